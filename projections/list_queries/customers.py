"""The customer list: filters, scoping to unowned customers and those of visible people,
search by the start of a normalised name, tax id, e-mail or phone number (or the end of a
phone number), and fuzzy search ranking names by shared trigrams.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from aggregates.customer import normalise_name
from projections.base import in_clause
from projections.list_queries.paging import (
    PageRequest,
    RowPage,
    Sort,
    Where,
    fetch_page,
    sorts,
)
from projections.listings import CUSTOMER_COLUMNS, customer_search_keys, name_grams
from projections.store import ReadStore, Row

TOP = "\U0010ffff"
"""Above every character: ``key >= p AND key < p || TOP`` is a prefix match by index."""
FUZZY_SHARE = 0.5
"""Fuzzy search: a name matches when it shares this share of the query's trigrams."""

CUSTOMER_SORTS = {
    **sorts("customer_id", ("registered_at", "updated_at")),
    "name": Sort("name_key", False, "customer_id"),
    "-name": Sort("name_key", True, "customer_id"),
}


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


def _visible_customers(where: Where, visible: Collection[str] | None, prefix: str = "") -> None:
    if visible is None:
        return
    people = sorted(visible)
    if not people:
        where.add("1 = 0")
        return
    where.add(f"({prefix}owner_id IS NULL OR {prefix}owner_id {in_clause(people)})", *people)


def _customer_conditions(where: Where, selection: CustomerFilter, prefix: str = "") -> None:
    for column, value in (
        ("owner_id", selection.owner_id),
        ("classification", selection.classification),
        ("region", selection.region),
    ):
        if value is not None:
            where.add(f"{prefix}{column} = %s", value)


def _search_condition(where: Where, text: str) -> None:
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
    where = Where()
    _visible_customers(where, visible)
    _customer_conditions(where, selection)
    if selection.search:
        _search_condition(where, selection.search)
    select = f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM list_customers"
    with database.transaction() as tx:
        return fetch_page(tx, select, where, page, page.sort.column)


FUZZY_SORT = Sort("shared", True, "customer_id")


def _fuzzy_customers(
    database: ReadStore,
    selection: CustomerFilter,
    page: PageRequest,
    visible: Collection[str] | None,
) -> RowPage:
    grams = sorted(name_grams(normalise_name(selection.search or "")))
    where = Where()
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
