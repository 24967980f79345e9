"""The opportunity list: which deals (``OpportunityFilter``), scoped to those the caller's
visible people own or work on, and each deal as the list shows it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field

from projections.base import in_clause
from projections.list_queries.paging import PageRequest, RowPage, Where, fetch_page, sorts
from projections.listings import OPPORTUNITY_COLUMNS
from projections.store import ReadStore, Row

OPPORTUNITY_SORTS = sorts(
    "opportunity_id", ("expected_close", "amount", "opened_at", "updated_at", "stage", "title")
)


@dataclass(frozen=True)
class OpportunityFilter:
    """Which deals: each given criterion must match."""

    owner_id: str | None = None
    team_member: str | None = None
    customer_id: str | None = None
    stage: int | None = None
    status: str | None = None
    product: str | None = None
    region: str | None = None
    close_from: date | None = None
    close_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    high_value: bool | None = None
    idle_before: str | None = None
    """Stale: open deals neither worked nor moved since this ``iso_timestamp``."""
    stale: bool | None = None


class OpportunityItem(BaseModel):
    """One deal as the list shows it."""

    opportunity_id: str = Field(examples=["5b0c6c1e-54f8-4f57-9e4f-7a0d2f1b8c11"])
    customer_id: str
    owner_id: str = Field(examples=["alice"])
    title: str = Field(examples=["Line 3 automation"])
    source: str = Field(examples=["referral"])
    product: str = Field(examples=["robot-arm"])
    region: str = Field(examples=["east"])
    amount: Decimal = Field(examples=["250000.00"])
    expected_close: date = Field(examples=["2026-06-30"])
    stage: int = Field(examples=[3])
    status: str = Field(examples=["open"])
    qualification: str = Field(examples=["qualified"])
    high_value: bool
    evaluation_score: int | None = Field(examples=[14])
    opened_at: str = Field(examples=["2026-02-01T09:30:00.000000Z"])
    last_worked_at: str = Field(description="the last activity or stage change")
    updated_at: str
    won_amount: Decimal | None = Field(examples=[None])
    closed_on: date | None = Field(examples=[None])
    version: int = Field(examples=[7])


def opportunity_item(row: Row) -> OpportunityItem:
    values = {k: row[k] for k in OPPORTUNITY_COLUMNS if k not in _DEAL_TEXT_COLUMNS}
    return OpportunityItem(
        **values,
        amount=Decimal(row["amount_text"]),
        won_amount=Decimal(row["won_amount_text"]) if row["won_amount_text"] else None,
        last_worked_at=row["idle_since"],
    )


_DEAL_TEXT_COLUMNS = {"amount", "amount_text", "won_amount_text", "idle_since"}


def _visible_deals(where: Where, visible: Collection[str] | None) -> None:
    if visible is None:
        return
    people = sorted(visible)
    where.add(
        f"(owner_id {in_clause(people)} OR opportunity_id IN (SELECT opportunity_id FROM "
        f"list_opportunity_team WHERE person_id {in_clause(people)}))",
        *people,
        *people,
    )


def _deal_conditions(where: Where, selection: OpportunityFilter) -> None:
    for column in ("owner_id", "customer_id", "stage", "product", "region"):
        value = getattr(selection, column)
        if value is not None:
            where.add(f"{column} = %s", value)
    if selection.status == "nurturing":
        where.add("status = 'open' AND qualification = 'nurturing'")
    elif selection.status is not None:
        where.add("status = %s", selection.status)
    if selection.team_member is not None:
        where.add(
            "opportunity_id IN (SELECT opportunity_id FROM list_opportunity_team "
            "WHERE person_id = %s)",
            selection.team_member,
        )
    if selection.close_from is not None:
        where.add("expected_close >= %s", selection.close_from.isoformat())
    if selection.close_to is not None:
        where.add("expected_close <= %s", selection.close_to.isoformat())
    if selection.amount_min is not None:
        where.add("amount >= %s", str(selection.amount_min))
    if selection.amount_max is not None:
        where.add("amount <= %s", str(selection.amount_max))
    if selection.high_value is not None:
        where.add("high_value = %s", int(selection.high_value))
    if selection.stale is not None and selection.idle_before is not None:
        stale = "(status = 'open' AND idle_since < %s)"
        where.add(stale if selection.stale else f"NOT {stale}", selection.idle_before)


_SORT_KEY_OF = {"amount": "amount_text"}


def query_opportunities(
    database: ReadStore,
    selection: OpportunityFilter,
    page: PageRequest,
    visible: Collection[str] | None,
) -> RowPage:
    """Deals matching ``selection`` among those ``visible`` people own or work on (None:
    all), in ``page.sort`` order."""
    where = Where()
    if visible is None or selection.owner_id not in visible:
        _visible_deals(where, visible)  # (a visible owner's deals are all visible)
    _deal_conditions(where, selection)
    select = f"SELECT {', '.join(OPPORTUNITY_COLUMNS)} FROM list_opportunities"
    sort_key = _SORT_KEY_OF.get(page.sort.column, page.sort.column)
    with database.transaction() as tx:
        return fetch_page(tx, select, where, page, sort_key)
