"""What routes depend on: the ledger, the read database, the projection worker, freshness."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response

from aggregates.errors import RuleViolationError
from commands.ledger import CommandResult, SalesLedger
from commands.models import CommandAccepted
from projections.parking import parked_events
from projections.runner import ProjectionWorker, wait_for_position
from services.database import Database
from services.settings import Settings

READ_YOUR_WRITES_TIMEOUT_SECONDS = 5.0
INCOMPLETE_HEADER = "Ledger-Incomplete"
"""Set on the answers of a projection that has parked events: what it leaves out."""
PARKED_CHECK_SECONDS = 1.0
_parked_seen: dict[tuple[int, str], tuple[float, list[int]]] = {}


@dataclass
class ApiContext:
    """Everything the app wires once at start-up."""

    settings: Settings
    ledger: SalesLedger
    database: Database
    worker: ProjectionWorker | None
    projection_names: list[str] = field(default_factory=list)
    """The projections whose lag ``/readyz`` bounds."""


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


def get_ledger(request: Request) -> SalesLedger:
    return get_context(request).ledger


def get_database(request: Request) -> Database:
    return get_context(request).database


ContextDep = Annotated[ApiContext, Depends(get_context)]
LedgerDep = Annotated[SalesLedger, Depends(get_ledger)]
DatabaseDep = Annotated[Database, Depends(get_database)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a command safely: the same key records it only once.",
    ),
]


def accepted(result: CommandResult, context: ApiContext | None = None) -> CommandAccepted:
    """A command's result as the API returns it (and a nudge to the in-process worker)."""
    if context is not None and context.worker is not None:
        context.worker.wake()
    return CommandAccepted(
        aggregate_id=result.aggregate_id,
        version=result.version,
        position=result.position,
        duplicate=result.duplicate,
    )


def _flag_if_incomplete(database: Database, projection: str, response: Response) -> None:
    """Mark the answer incomplete while ``projection`` has parked events (looked up
    at most every ``PARKED_CHECK_SECONDS``)."""
    key = (id(database), projection)
    now = time.monotonic()
    seen = _parked_seen.get(key)
    if seen is None or now - seen[0] > PARKED_CHECK_SECONDS:
        with database.transaction() as tx:
            positions = [p.position for p in parked_events(tx, projection)]
        seen = _parked_seen[key] = (now, positions)
    if seen[1]:
        shown = ",".join(str(p) for p in seen[1][:20])
        response.headers[INCOMPLETE_HEADER] = (
            f"{projection}; parked={len(seen[1])}; positions={shown}"
        )


def fresh(projection: str) -> Callable[..., None]:
    """A dependency that waits until ``projection`` has applied ``min_position``."""

    def wait(
        context: ContextDep,
        response: Response,
        min_position: Annotated[
            int | None,
            Query(
                ge=0,
                description="Wait (up to 5 s) until this query's projection has applied this "
                "ledger position (a command's `position`); 504 if it has not by then, 422 "
                "if the ledger has no such position.",
                examples=[1042],
            ),
        ] = None,
    ) -> None:
        _flag_if_incomplete(context.database, projection, response)
        if min_position is None:
            return
        recorded = context.ledger.store.max_committed_notification_id()
        if min_position > recorded:
            raise RuleViolationError(
                f"position {min_position} has not been recorded (the ledger is at {recorded})"
            )
        on_wait: Any = context.worker.wake if context.worker is not None else None
        wait_for_position(
            context.database,
            projection,
            min_position,
            READ_YOUR_WRITES_TIMEOUT_SECONDS,
            on_wait=on_wait,
        )

    wait.__name__ = f"wait_for_{projection}"
    return wait
