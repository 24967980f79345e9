"""The audit trail and any aggregate's history or past state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Depends, Query

from projections.audit import AuditPage, query_audit_trail
from services.api.aggregate_views import AggregateState, aggregate_state
from services.api.dependencies import DatabaseDep, LedgerDep, fresh
from services.api.security import CurrentActor

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditPage, dependencies=[Depends(fresh("audit"))])
def get_audit_trail(
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    aggregate_id: str | None = None,
    by: Annotated[str | None, Query(description="only events caused by this person")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int, Query(ge=0, description="cursor: the previous page's next_after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Every recorded event in order, per aggregate, per actor and per time range."""
    return query_audit_trail(
        database,
        ledger,
        aggregate_id=aggregate_id,
        actor=by,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )


@router.get("/aggregates/{aggregate_id}", response_model=AggregateState)
def get_aggregate(
    aggregate_id: str,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: Annotated[datetime | None, Query(examples=["2026-03-31T23:59:59Z"])] = None,
) -> AggregateState:
    """Any aggregate (customer, opportunity, plan, forecast …) now or as of a past moment."""
    return aggregate_state(ledger, Aggregate, aggregate_id, as_of)
