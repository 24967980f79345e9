"""The audit trail and any aggregate's history or past state."""

from __future__ import annotations

from typing import Annotated, Any

from eventsourcing.domain import Aggregate
from fastapi import Depends, Query, Request, Response

from projections.audit import AuditEntry, query_audit_trail
from services.api.aggregate_views import (
    AggregateState,
    aggregate_state,
    checked_record,
    with_etag,
)
from services.api.csv_export import Format
from services.api.dependencies import ContextDep, DatabaseDep, LedgerDep, fresh
from services.api.listing import list_response
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, int_state
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.api.time_params import AsOf, Since, Until

router = LedgerRouter(tags=["audit"])


@router.get("/audit", response_model=Page[AuditEntry], dependencies=[Depends(fresh("audit"))])
def get_audit_trail(
    request: Request,
    response: Response,
    context: ContextDep,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    since: Since,
    until: Until,
    aggregate_id: str | None = None,
    by: Annotated[str | None, Query(description="only events caused by this person")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """Every recorded event in order, per aggregate, per actor and per time range."""

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        page = query_audit_trail(
            database,
            ledger,
            aggregate_id=aggregate_id,
            actor=by,
            since=since,
            until=until,
            after=int_state(state),
            limit=limit,
        )
        return list(page.items), page.next_after

    return list_response(
        request, response, context, actor, name="audit", sort="position", cursor=cursor,
        limit=limit, format=format, item=AuditEntry, fetch=fetch,
    )  # fmt: skip


@router.get("/aggregates/{aggregate_id}", response_model=AggregateState)
def get_aggregate(
    aggregate_id: str,
    request: Request,
    response: Response,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: AsOf,
) -> AggregateState:
    """Any aggregate (customer, opportunity, plan, forecast …) now or as of a past moment."""
    return with_etag(response, aggregate_state(
        ledger, Aggregate, aggregate_id, as_of, checked_record(request, aggregate_id)
    ))
