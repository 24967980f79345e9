"""Sorting and keyset paging of the lists: a sort order (column, direction, tie-breaking
id), the page asked for, the conditions of a query, and one page of rows with the keyset
after its last row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.base import in_clause
from projections.store import Row, Transaction


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
class Where:
    """The conditions of a query (ANDed) and their parameters."""

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


def fetch_page(
    tx: Transaction, select: str, where: Where, page: PageRequest, sort_key: str
) -> RowPage:
    """One page of ``select`` under ``where``, after ``page.after`` in ``page.sort`` order;
    ``sort_key`` is the row column holding the sort value."""
    after, after_params = page.sort.after_sql(page.after)
    rows = tx.execute(
        f"{select} WHERE 1 = 1{where.sql()}{after} ORDER BY {page.sort.order_sql()} LIMIT %s",
        [*where.params, *after_params, page.limit + 1],
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_after = (rows[-1][sort_key], rows[-1][page.sort.id_column]) if more else None
    return RowPage(rows, next_after)
