"""The forecast list: each visible person's forecast per period, filtered by person,
period and status.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel, Field

from projections.list_queries.paging import PageRequest, RowPage, Where, fetch_page, sorts
from projections.listings import FORECAST_COLUMNS
from projections.store import ReadStore, Row

FORECAST_SORTS = sorts("forecast_id", ("period", "updated_at"))


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
    where = Where()
    if visible is not None:
        where.member("person_id", visible)
    for column in ("person_id", "period", "status"):
        value = getattr(selection, column)
        if value is not None:
            where.add(f"{column} = %s", value)
    select = f"SELECT {', '.join(FORECAST_COLUMNS)} FROM list_forecasts"
    with database.transaction() as tx:
        return fetch_page(tx, select, where, page, page.sort.column)
