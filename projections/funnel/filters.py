"""Which deals a funnel query counts: owners, region, product, source and a close period."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from projections.base import (
    in_clause,
)
from projections.store import Row


@dataclass(frozen=True)
class FunnelFilter:
    """Which deals to count: each given criterion must match (``owner_ids``: any of them)."""

    owner_ids: Collection[str] | None = None
    region: str | None = None
    product: str | None = None
    source: str | None = None
    close_from: date | None = None
    close_to: date | None = None

    def sql(self, close_column: str = "expected_close") -> tuple[str, list[Any]]:
        """SQL conditions (prefixed with AND) and their parameters."""
        conditions, params = self._dimension_conditions(include_owners=True)
        if self.close_from is not None:
            conditions.append(f"{close_column} >= %s")
            params.append(self.close_from.isoformat())
        if self.close_to is not None:
            conditions.append(f"{close_column} <= %s")
            params.append(self.close_to.isoformat())
        return "".join(f" AND {c}" for c in conditions), params

    def month_sql(self) -> tuple[str, list[Any]]:
        """Conditions on ``funnel_dimension_totals`` (see ``in_whole_months``)."""
        conditions, params = self._dimension_conditions(include_owners=False)
        if self.close_from is not None:
            conditions.append("close_month >= %s")
            params.append(self.close_from.isoformat()[:7])
        if self.close_to is not None:
            conditions.append("close_month <= %s")
            params.append(self.close_to.isoformat()[:7])
        return "".join(f" AND {c}" for c in conditions), params

    def by_owners_only(self) -> bool:
        """True if nothing but owners (or nothing at all) is selected: what the per-owner
        totals (``funnel_stage_totals``) can answer."""
        return self == FunnelFilter(owner_ids=self.owner_ids)

    def in_whole_months(self) -> bool:
        """True if the close period starts on a month's first day and ends on a last day."""
        starts = self.close_from is None or self.close_from.day == 1
        ends = self.close_to is None or (self.close_to + timedelta(days=1)).day == 1
        return starts and ends

    def _dimension_conditions(self, *, include_owners: bool) -> tuple[list[str], list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        if include_owners and self.owner_ids is not None:
            owners = sorted(self.owner_ids)
            conditions.append(f"owner_id {in_clause(owners)}")
            params.extend(owners)
        for column in ("region", "product", "source"):
            value = getattr(self, column)
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        return conditions, params

    def matches(self, row: Row, close_column: str = "expected_close") -> bool:
        if self.owner_ids is not None and row["owner_id"] not in self.owner_ids:
            return False
        for column in ("region", "product", "source"):
            value = getattr(self, column)
            if value is not None and row[column] != value:
                return False
        close = row[close_column]
        if self.close_from is not None and (close is None or close < self.close_from.isoformat()):
            return False
        return not (
            self.close_to is not None and (close is None or close > self.close_to.isoformat())
        )
