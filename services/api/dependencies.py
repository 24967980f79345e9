"""What routes depend on: the ledger, the read database, the projection worker, freshness."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response

from aggregates.errors import RuleViolationError
from commands.ledger import CommandResult, SalesLedger
from commands.models import CommandAccepted
from projections.parking import parked_events
from projections.runner import ProjectionWorker, wait_for_position
from services.api.conventions import mark_replayed
from services.api.routes import run_waiting
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


# The dependencies below do no I/O, so they are ``async``: FastAPI runs a plain ``def``
# dependency in a worker thread, a hand-over (and a wait for the GIL) per dependency
# per request; these run on the event loop instead. Blocking ones stay plain ``def``.


async def context_of(request: Request) -> ApiContext:
    return get_context(request)


async def get_ledger(request: Request) -> SalesLedger:
    return get_context(request).ledger


async def get_database(request: Request) -> Database:
    return get_context(request).database


ContextDep = Annotated[ApiContext, Depends(context_of)]
LedgerDep = Annotated[SalesLedger, Depends(get_ledger)]
DatabaseDep = Annotated[Database, Depends(get_database)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a command safely: the same key records it only once, and the "
        "repeat answers as the first time did (`Idempotent-Replayed: true`); the same key "
        "with another request is refused (422).",
    ),
]


def accepted(result: CommandResult, context: ApiContext | None = None) -> CommandAccepted:
    """A command's result as the API returns it (and a nudge to the in-process worker)."""
    if context is not None and context.worker is not None:
        context.worker.wake()
    if result.duplicate:
        mark_replayed()
    return CommandAccepted(
        aggregate_id=result.aggregate_id, version=result.version, position=result.position
    )


def _parked_recently(database: Database, projection: str) -> list[int] | None:
    """``projection``'s parked positions if looked up less than ``PARKED_CHECK_SECONDS``
    ago, else None."""
    seen = _parked_seen.get((id(database), projection))
    if seen is None or time.monotonic() - seen[0] > PARKED_CHECK_SECONDS:
        return None
    return seen[1]


def _flag_if_incomplete(database: Database, projection: str, response: Response) -> None:
    """Mark the answer incomplete while ``projection`` has parked events (looked up
    at most every ``PARKED_CHECK_SECONDS``)."""
    positions = _parked_recently(database, projection)
    if positions is None:
        with database.transaction() as tx:
            positions = [p.position for p in parked_events(tx, projection)]
        _parked_seen[(id(database), projection)] = (time.monotonic(), positions)
    _mark_incomplete(projection, positions, response)


def _mark_incomplete(projection: str, positions: list[int], response: Response) -> None:
    if positions:
        shown = ",".join(str(p) for p in positions[:20])
        response.headers[INCOMPLETE_HEADER] = (
            f"{projection}; parked={len(positions)}; positions={shown}"
        )


def fresh(projection: str) -> Callable[..., Awaitable[None]]:
    """A dependency that waits until ``projection`` has applied ``min_position``. Most
    requests give none and find the parked events looked up recently: they are answered
    on the event loop; the others wait (or look up) in a worker thread."""

    def wait_in_thread(
        context: ApiContext, response: Response, min_position: int | None
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

    async def wait(
        request: Request,
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
        context = get_context(request)
        parked = _parked_recently(context.database, projection)
        if min_position is None and parked is not None:
            _mark_incomplete(projection, parked, response)
            return
        await run_waiting(wait_in_thread, context, response, min_position)

    wait.__name__ = f"wait_for_{projection}"
    return wait
