"""Process monitoring: stale and slipped deals, activity, unowned customers, transfers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from aggregates.visibility import require_visible_people, visible_people
from projections.monitoring import (
    ActivityCount,
    OwnershipTransfer,
    UnownedCustomer,
    WatchedDeal,
    query_activity_counts,
    query_ownership_transfers,
    query_slipped_deals,
    query_stale_deals,
    query_unowned_customers,
)
from projections.parking import parked_events
from services.api.csv_export import Format, csv_response, report_rows, wants_csv
from services.api.dependencies import ContextDep, DatabaseDep, LedgerDep, fresh
from services.api.filters import owners_in_scope
from services.api.listing import list_response
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, int_state
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.holdings import held_by

router = LedgerRouter(
    prefix="/monitoring", tags=["monitoring"], dependencies=[Depends(fresh("monitoring"))]
)

Owner = Annotated[str | None, Query(description="one person's deals (`me`: yours)")]
Team = Annotated[str | None, Query(description="a manager (`me`: yourself): their whole subtree")]
Week = Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$", examples=["2026-W14"])]


def _offset_pages(query: Any) -> Any:
    """A fetch over a query paged by offset: the cursor carries the offset."""

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        offset = int_state(state)
        page = query(limit=limit, offset=offset)
        return list(page.items), page.next_offset

    return fetch


@router.get("/stale-deals", response_model=Page[WatchedDeal])
def get_stale_deals(
    request: Request,
    response: Response,
    context: ContextDep,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    days: Annotated[
        int | None,
        Query(
            ge=1, le=3650,
            description="idle for at least this long (default: the configured stale days)",
        ),
    ] = None,
    owner: Owner = None,
    team: Team = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """Open deals with no activity and no stage change for ``days`` days."""
    owners = owners_in_scope(ledger, actor, owner, team, own_scope=True)
    idle_days = days or ledger.organisation(fresh=False).configuration.stale_days

    def query(limit: int, offset: int) -> Any:
        page = query_stale_deals(
            database, days=idle_days, owner_ids=owners, limit=limit, offset=offset
        )
        return _with_owner_names(ledger, page)

    return list_response(
        request, response, context, actor, name="stale-deals", sort="idle", cursor=cursor,
        limit=limit, format=format, item=WatchedDeal, fetch=_offset_pages(query),
    )  # fmt: skip


@router.get("/slipped-deals", response_model=Page[WatchedDeal])
def get_slipped_deals(
    request: Request,
    response: Response,
    context: ContextDep,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    owner: Owner = None,
    team: Team = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """Open deals whose expected close date has passed."""
    owners = owners_in_scope(ledger, actor, owner, team, own_scope=True)

    def query(limit: int, offset: int) -> Any:
        page = query_slipped_deals(database, owner_ids=owners, limit=limit, offset=offset)
        return _with_owner_names(ledger, page)

    return list_response(
        request, response, context, actor, name="slipped-deals", sort="idle", cursor=cursor,
        limit=limit, format=format, item=WatchedDeal, fetch=_offset_pages(query),
    )  # fmt: skip


@router.get("/activity", response_model=list[ActivityCount])
def get_activity_counts(
    request: Request,
    context: ContextDep,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    person: Owner = None,
    team: Team = None,
    from_week: Week = None,
    to_week: Week = None,
    format: Format = None,
) -> Any:
    """Activities logged per person and ISO week, by kind."""
    counts = query_activity_counts(
        database,
        person_ids=owners_in_scope(ledger, actor, person, team, own_scope=True),
        from_week=from_week,
        to_week=to_week,
    )
    if wants_csv(request, format):
        return csv_response(ledger, actor, request, *report_rows(counts))
    return counts


@router.get("/unowned-customers", response_model=Page[UnownedCustomer])
def get_unowned_customers(
    request: Request,
    response: Response,
    context: ContextDep,
    database: DatabaseDep,
    actor: CurrentActor,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """Customers without an account manager."""

    def query(limit: int, offset: int) -> Any:
        return query_unowned_customers(database, limit=limit, offset=offset)

    return list_response(
        request, response, context, actor, name="unowned-customers", sort="registered_at",
        cursor=cursor, limit=limit, format=format, item=UnownedCustomer,
        fetch=_offset_pages(query),
    )  # fmt: skip


@router.get("/ownership-transfers", response_model=Page[OwnershipTransfer])
def get_ownership_transfers(
    request: Request,
    response: Response,
    context: ContextDep,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    aggregate_id: str | None = None,
    person: Annotated[str | None, Query(description="old owner, new owner or actor")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """Every transfer of a customer or deal, in order (those from or to the people you see)."""
    organisation = ledger.organisation()
    require_visible_people(actor, {person} if person is not None else set(), organisation)
    people = visible_people(actor, organisation)

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        page = query_ownership_transfers(
            database, aggregate_id=aggregate_id, person_id=person, people=people,
            after=int_state(state), limit=limit,
        )  # fmt: skip
        return list(page.items), page.next_after

    return list_response(
        request, response, context, actor, name="ownership-transfers", sort="position",
        cursor=cursor, limit=limit, format=format, item=OwnershipTransfer, fetch=fetch,
    )  # fmt: skip


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


def _with_owner_names(ledger: Any, page: Any) -> Any:
    """Each watched deal with its owner's name (from the organisation, not the read model)."""
    people = ledger.organisation(fresh=False).people
    for item in page.items:
        person = people.get(item.owner_id)
        item.owner_name = person.name if person is not None else None
    return page
