"""The plan list, over the plans projection's ``plans`` table (any member may read
plans), filtered by period and status.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from projections.list_queries.paging import PageRequest, RowPage, Where, fetch_page, sorts
from projections.store import ReadStore

PLAN_SORTS = sorts("plan_id", ("drafted_at", "period", "name"))


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
    where = Where()
    for column in ("period", "status"):
        value = getattr(selection, column)
        if value is not None:
            where.add(f"{column} = %s", value)
    select = f"SELECT {', '.join(PLAN_LIST_COLUMNS)} FROM plans"
    with database.transaction() as tx:
        return fetch_page(tx, select, where, page, page.sort.column)
