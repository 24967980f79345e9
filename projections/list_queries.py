"""Queries of the list read models (``projections.listings`` and the plans table):
filtered, scoped to the people whose records the caller may read, sorted, and paged by
keyset (the sort value and id of the last row seen), so a page costs the same however
deep into the list it is.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.customer import normalise_name
from projections.base import in_clause
from projections.listings import (
    CUSTOMER_COLUMNS,
    FORECAST_COLUMNS,
    OPPORTUNITY_COLUMNS,
    customer_search_keys,
    name_grams,
)
from projections.store import ReadStore, Row, Transaction

TOP = "\U0010ffff"
"""Above every character: ``key >= p AND key < p || TOP`` is a prefix match by index."""
FUZZY_SHARE = 0.5
"""Fuzzy search: a name matches when it shares this share of the query's trigrams."""


@dataclass(frozen=True)
class Sort:
    """One sort order of a list: a column, its direction, and the tie-breaking id."""

    column: str
    descending: bool
    id_column: str

    def order_sql(self) -> str:
        direction = " DESC" if self.descending else ""
        return f"{self.column}{direction}, {self.id_column}{direction}"

    def after_sql(self, after: tuple[Any, str] | None) -> tuple[str, list[Any]]:
        if after is None:
            return "", []
        op = "<" if self.descending else ">"
        value, last_id = after
        return f" AND ({self.column}, {self.id_column}) {op} (%s, %s)", [value, last_id]


def sorts(id_column: str, columns: Sequence[str]) -> dict[str, Sort]:
    """``name`` and ``-name`` for each column."""
    table: dict[str, Sort] = {}
    for name in columns:
        table[name] = Sort(name, False, id_column)
        table[f"-{name}"] = Sort(name, True, id_column)
    return table


OPPORTUNITY_SORTS = sorts(
    "opportunity_id", ("expected_close", "amount", "opened_at", "updated_at", "stage", "title")
)
CUSTOMER_SORTS = {
    **sorts("customer_id", ("registered_at", "updated_at")),
    "name": Sort("name_key", False, "customer_id"),
    "-name": Sort("name_key", True, "customer_id"),
}
FORECAST_SORTS = sorts("forecast_id", ("period", "updated_at"))
PLAN_SORTS = sorts("plan_id", ("drafted_at", "period", "name"))


@dataclass(frozen=True)
class PageRequest:
    """Which page: the sort, the keyset of the last row seen, and how many rows."""

    sort: Sort
    after: tuple[Any, str] | None = None
    limit: int = 100


@dataclass
class RowPage:
    """A page of rows and the keyset after its last row (None: it was the last page)."""

    rows: list[Row]
    next_after: tuple[Any, str] | None


@dataclass
class _Where:
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, condition: str, *params: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(params)

    def member(self, column: str, values: Collection[str]) -> None:
        ordered = sorted(values)
        self.add(f"{column} {in_clause(ordered)}", *ordered)

    def sql(self) -> str:
        return "".join(f" AND {c}" for c in self.conditions)


def _page(
    tx: Transaction, select: str, where: _Where, page: PageRequest, sort_key: str
) -> RowPage:
    after, after_params = page.sort.after_sql(page.after)
    rows = tx.execute(
        f"{select} WHERE 1 = 1{where.sql()}{after} ORDER BY {page.sort.order_sql()} LIMIT %s",
        [*where.params, *after_params, page.limit + 1],
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_after = (rows[-1][sort_key], rows[-1][page.sort.id_column]) if more else None
    return RowPage(rows, next_after)


# Opportunities.


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


def _visible_deals(where: _Where, visible: Collection[str] | None) -> None:
    if visible is None:
        return
    people = sorted(visible)
    where.add(
        f"(owner_id {in_clause(people)} OR opportunity_id IN (SELECT opportunity_id FROM "
        f"list_opportunity_team WHERE person_id {in_clause(people)}))",
        *people,
        *people,
    )


def _deal_conditions(where: _Where, selection: OpportunityFilter) -> None:
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
    where = _Where()
    if visible is None or selection.owner_id not in visible:
        _visible_deals(where, visible)  # (a visible owner's deals are all visible)
    _deal_conditions(where, selection)
    select = f"SELECT {', '.join(OPPORTUNITY_COLUMNS)} FROM list_opportunities"
    with database.transaction() as tx:
        return _page(tx, select, where, page, _SORT_KEY_OF.get(page.sort.column, page.sort.column))


# Customers.


@dataclass(frozen=True)
class CustomerFilter:
    owner_id: str | None = None
    classification: str | None = None
    region: str | None = None
    search: str | None = None
    fuzzy: bool = False


class CustomerItem(BaseModel):
    """One customer as the list shows it."""

    customer_id: str = Field(examples=["0f8e2d3c-1b4a-4d5e-8f9a-0b1c2d3e4f50"])
    name: str = Field(examples=["Shanghai Bright Machinery Co."])
    source: str = Field(examples=["trade fair"])
    tax_id: str | None = Field(examples=["91310000MA1FL0001X"])
    phone: str | None = Field(examples=["+86 21 5555 0100"])
    email: str | None = Field(examples=["purchasing@bright.example"])
    owner_id: str | None = Field(examples=["alice"])
    classification: str | None = Field(examples=["A"])
    region: str | None = Field(examples=["east"])
    registered_at: str
    updated_at: str
    version: int = Field(examples=[3])
    match_score: float | None = Field(
        default=None, description="fuzzy search: the share of the query's trigrams matched"
    )


def customer_item(row: Row) -> CustomerItem:
    values = {k: row[k] for k in CustomerItem.model_fields if k in row}
    return CustomerItem(**values)


def _visible_customers(where: _Where, visible: Collection[str] | None, prefix: str = "") -> None:
    if visible is None:
        return
    people = sorted(visible)
    if not people:
        where.add("1 = 0")
        return
    where.add(f"({prefix}owner_id IS NULL OR {prefix}owner_id {in_clause(people)})", *people)


def _customer_conditions(where: _Where, selection: CustomerFilter, prefix: str = "") -> None:
    for column, value in (
        ("owner_id", selection.owner_id),
        ("classification", selection.classification),
        ("region", selection.region),
    ):
        if value is not None:
            where.add(f"{prefix}{column} = %s", value)


def _search_condition(where: _Where, text: str) -> None:
    keys = customer_search_keys(text)
    branches: list[str] = []
    params: list[Any] = []
    for column, key in (("name_key", keys["name"]), ("tax_key", keys["tax_id"])):
        if key:
            branches.append(f"({column} >= %s AND {column} < %s)")
            params.extend([key, key + TOP])
    if keys["email"]:
        branches.append("(email_key >= %s AND email_key < %s)")
        params.extend([keys["email"], keys["email"] + TOP])
    digits = keys["phone_digits"]
    if digits:
        reverse = digits[::-1]
        branches.append("(phone_key >= %s AND phone_key < %s)")
        branches.append("(phone_rev >= %s AND phone_rev < %s)")
        params.extend([digits, digits + TOP, reverse, reverse + TOP])
    if keys["phone_tails"]:
        branches.append(f"phone_key {in_clause(keys['phone_tails'])}")
        params.extend(keys["phone_tails"])
    where.add(f"({' OR '.join(branches)})" if branches else "1 = 0", *params)


def query_customers(
    database: ReadStore,
    selection: CustomerFilter,
    page: PageRequest,
    visible: Collection[str] | None,
) -> RowPage:
    """Customers matching ``selection`` that are unowned or owned by ``visible`` people
    (None: all). A search matches the start of the name, tax id, e-mail or phone number
    (or the end of the phone number), each normalised as the uniqueness check does; a
    fuzzy search ranks names by shared trigrams (the page's sort is then by score)."""
    if selection.fuzzy and selection.search:
        return _fuzzy_customers(database, selection, page, visible)
    where = _Where()
    _visible_customers(where, visible)
    _customer_conditions(where, selection)
    if selection.search:
        _search_condition(where, selection.search)
    select = f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM list_customers"
    with database.transaction() as tx:
        return _page(tx, select, where, page, page.sort.column)


FUZZY_SORT = Sort("shared", True, "customer_id")


def _fuzzy_customers(
    database: ReadStore,
    selection: CustomerFilter,
    page: PageRequest,
    visible: Collection[str] | None,
) -> RowPage:
    grams = sorted(name_grams(normalise_name(selection.search or "")))
    where = _Where()
    _visible_customers(where, visible, "c.")
    _customer_conditions(where, selection, "c.")
    needed = max(1, math.ceil(len(grams) * FUZZY_SHARE))
    after = ""
    after_params: list[Any] = []
    if page.after is not None:
        shared, last_id = page.after
        after = " AND (g.shared < %s OR (g.shared = %s AND c.customer_id > %s))"
        after_params = [int(shared), int(shared), last_id]
    columns = ", ".join(f"c.{c}" for c in CUSTOMER_COLUMNS)
    conditions = where.sql()
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT {columns}, g.shared FROM (SELECT customer_id, COUNT(*) AS shared "
            f"FROM list_customer_grams WHERE gram {in_clause(grams)} GROUP BY customer_id "
            "HAVING COUNT(*) >= %s) g JOIN list_customers c ON c.customer_id = g.customer_id "
            f"WHERE 1 = 1{conditions}{after} ORDER BY g.shared DESC, c.customer_id LIMIT %s",
            [*grams, needed, *where.params, *after_params, page.limit + 1],
        )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    for row in rows:
        row["match_score"] = round(int(row["shared"]) / len(grams), 4)
    next_after = (int(rows[-1]["shared"]), rows[-1]["customer_id"]) if more else None
    return RowPage(rows, next_after)


# Forecasts.


@dataclass(frozen=True)
class ForecastFilter:
    person_id: str | None = None
    period: str | None = None
    status: str | None = None


class ForecastItem(BaseModel):
    """One person's forecast for one period."""

    forecast_id: str
    person_id: str = Field(examples=["alice"])
    period: str = Field(examples=["2026-Q2"])
    status: str = Field(examples=["submitted"], description="open, submitted or revised")
    total: Decimal = Field(examples=["1200000"], description="as submitted or last revised")
    submitted_at: str | None
    updated_at: str
    version: int


def forecast_item(row: Row) -> ForecastItem:
    values = {k: row[k] for k in FORECAST_COLUMNS if k not in ("total", "total_text")}
    return ForecastItem(**values, total=Decimal(row["total_text"]))


def query_forecasts(
    database: ReadStore,
    selection: ForecastFilter,
    page: PageRequest,
    visible: Collection[str] | None,
) -> RowPage:
    """Forecasts of ``visible`` people (None: everyone's) matching ``selection``."""
    where = _Where()
    if visible is not None:
        where.member("person_id", visible)
    for column in ("person_id", "period", "status"):
        value = getattr(selection, column)
        if value is not None:
            where.add(f"{column} = %s", value)
    select = f"SELECT {', '.join(FORECAST_COLUMNS)} FROM list_forecasts"
    with database.transaction() as tx:
        return _page(tx, select, where, page, page.sort.column)


# Plans.


@dataclass(frozen=True)
class PlanFilter:
    period: str | None = None
    status: str | None = None


class PlanItem(BaseModel):
    """One sales plan."""

    plan_id: str
    name: str = Field(examples=["2026 annual plan"])
    period: str = Field(examples=["2026"])
    status: str = Field(examples=["approved"])
    revision_count: int
    drafted_by: str = Field(examples=["carol"])
    drafted_at: str


PLAN_LIST_COLUMNS = tuple(PlanItem.model_fields)


def query_plans(database: ReadStore, selection: PlanFilter, page: PageRequest) -> RowPage:
    """Every plan matching ``selection`` (any member may read plans)."""
    where = _Where()
    for column in ("period", "status"):
        value = getattr(selection, column)
        if value is not None:
            where.add(f"{column} = %s", value)
    select = f"SELECT {', '.join(PLAN_LIST_COLUMNS)} FROM plans"
    with database.transaction() as tx:
        return _page(tx, select, where, page, page.sort.column)
