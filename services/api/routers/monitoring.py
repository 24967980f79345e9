"""Process monitoring: stale and slipped deals, activity, unowned customers, transfers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from aggregates.visibility import require_visible_people, visible_people
from projections.monitoring import (
    ActivityCount,
    OwnershipTransferPage,
    UnownedCustomerPage,
    WatchedDealPage,
    query_activity_counts,
    query_ownership_transfers,
    query_slipped_deals,
    query_stale_deals,
    query_unowned_customers,
)
from projections.parking import parked_events
from services.api.dependencies import DatabaseDep, LedgerDep, fresh
from services.api.filters import owners_in_scope
from services.api.security import CurrentActor
from services.holdings import held_by

router = APIRouter(
    prefix="/monitoring", tags=["monitoring"], dependencies=[Depends(fresh("monitoring"))]
)

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
Owner = Annotated[str | None, Query(description="one person's deals")]
Team = Annotated[str | None, Query(description="a manager: their whole subtree")]
Week = Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$", examples=["2026-W14"])]


@router.get("/stale-deals", response_model=WatchedDealPage)
def get_stale_deals(
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    days: Annotated[int, Query(ge=1, le=3650, description="idle for at least this long")] = 30,
    owner: Owner = None,
    team: Team = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> WatchedDealPage:
    """Open deals with no activity and no stage change for ``days`` days."""
    return query_stale_deals(
        database,
        days=days,
        owner_ids=owners_in_scope(ledger, actor, owner, team, own_scope=True),
        limit=limit,
        offset=offset,
    )


@router.get("/slipped-deals", response_model=WatchedDealPage)
def get_slipped_deals(
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    owner: Owner = None,
    team: Team = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> WatchedDealPage:
    """Open deals whose expected close date has passed."""
    return query_slipped_deals(
        database,
        owner_ids=owners_in_scope(ledger, actor, owner, team, own_scope=True),
        limit=limit,
        offset=offset,
    )


@router.get("/activity", response_model=list[ActivityCount])
def get_activity_counts(
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    person: Owner = None,
    team: Team = None,
    from_week: Week = None,
    to_week: Week = None,
) -> list[ActivityCount]:
    """Activities logged per person and ISO week, by kind."""
    return query_activity_counts(
        database,
        person_ids=owners_in_scope(ledger, actor, person, team, own_scope=True),
        from_week=from_week,
        to_week=to_week,
    )


@router.get("/unowned-customers", response_model=UnownedCustomerPage)
def get_unowned_customers(
    database: DatabaseDep, actor: CurrentActor, limit: Limit = 100, offset: Offset = 0
) -> UnownedCustomerPage:
    """Customers without an account manager."""
    return query_unowned_customers(database, limit=limit, offset=offset)


@router.get("/ownership-transfers", response_model=OwnershipTransferPage)
def get_ownership_transfers(
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    aggregate_id: str | None = None,
    person: Annotated[str | None, Query(description="old owner, new owner or actor")] = None,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Limit = 100,
) -> OwnershipTransferPage:
    """Every transfer of a customer or deal, in order (those from or to the people you see)."""
    organisation = ledger.organisation()
    require_visible_people(actor, {person} if person is not None else set(), organisation)
    return query_ownership_transfers(
        database,
        aggregate_id=aggregate_id,
        person_id=person,
        people=visible_people(actor, organisation),
        after=after,
        limit=limit,
    )


class ParkedEventView(BaseModel):
    """An event a projection or the relay could not process: its consumer's answers
    leave it out (``Ledger-Incomplete``) until ``salesledger parked --retry`` applies it."""

    consumer: str
    position: int
    error: str
    parked_at: str


@router.get("/parked", response_model=list[ParkedEventView])
def get_parked(database: DatabaseDep) -> list[ParkedEventView]:
    """Dead letters: every parked event, by consumer and position."""
    with database.transaction() as tx:
        return [ParkedEventView(**vars(event)) for event in parked_events(tx)]


class DepartedHolding(BaseModel):
    """An open deal or a customer still held by someone who has left."""

    kind: str = Field(examples=["opportunity"])
    id: str
    label: str = Field(examples=["Line 3 automation"])
    owner_id: str = Field(examples=["rep-west-6"])


@router.get("/departed-holdings", response_model=list[DepartedHolding])
def get_departed_holdings(
    database: DatabaseDep, ledger: LedgerDep, actor: CurrentActor
) -> list[DepartedHolding]:
    """Open deals and customers whose owner has left, among the people you see: to reassign."""
    organisation = ledger.organisation()
    departed = {p.person_id for p in organisation.people.values() if not p.active}
    scope = visible_people(actor, organisation)
    owners = departed if scope is None else departed & scope
    return [DepartedHolding(**row) for row in held_by(database, owners)]
