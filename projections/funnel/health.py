"""Funnel health: each open stage's live count against its average at past month-ends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from aggregates.funnel import (
    HEALTH_HISTORY_MONTHS,
    LAST_OPEN_STAGE,
    STAGE_NAMES,
    health_label,
)
from projections.base import (
    as_decimal,
    iso_timestamp,
)
from projections.funnel.filters import FunnelFilter
from projections.funnel.queries import query_funnel
from projections.store import ReadStore

DEFAULT_HISTORY_MONTHS = HEALTH_HISTORY_MONTHS


class FunnelHealthStage(BaseModel):
    """A stage's current figures against what history says to expect there."""

    stage: int = Field(examples=[2])
    count: int = Field(examples=[9])
    expected_count: Decimal = Field(examples=["10.5"])
    count_ratio: Decimal | None = Field(examples=["0.86"])
    amount: Decimal = Field(examples=["300000"])
    expected_amount: Decimal = Field(examples=["350000"])
    amount_ratio: Decimal | None = Field(examples=["0.86"])
    label: str = Field(
        description="excellent (>100 %), good (70–100 %), warning (<70 %), or no history",
        examples=["good"],
    )


class FunnelHealth(BaseModel):
    """Funnel health: live counts ÷ the average count at the same stage at past month-ends."""

    history_moments: list[datetime]
    stages: list[FunnelHealthStage]


def past_month_ends(now: datetime, months: int) -> list[datetime]:
    """The last ``months`` month-ends (midnight starting each month) before ``now``."""
    moments = []
    year, month = now.year, now.month
    for _ in range(months):
        moments.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return [m for m in moments if m < now] or [now]


def query_funnel_health(
    database: ReadStore,
    selection: FunnelFilter = FunnelFilter(),
    now: datetime | None = None,
    history_months: int = DEFAULT_HISTORY_MONTHS,
) -> FunnelHealth:
    """Per open stage: live count and amount ÷ their average at the past month-ends."""
    now = now or datetime.now(UTC)
    moments = past_month_ends(now, history_months)
    current = query_funnel(database, selection)
    conditions, params = selection.sql()
    sums: dict[int, list[Decimal]] = {s: [Decimal(0), Decimal(0)] for s in STAGE_NAMES}
    with database.transaction() as tx:
        for moment in moments:
            at = iso_timestamp(moment)
            for sql, extra in (
                (
                    "SELECT stage, COUNT(*) AS n, SUM(amount) AS amount FROM funnel_stage_intervals"
                    " WHERE nurturing = 0 AND entered_at <= %s AND left_at > %s",
                    [at, at],
                ),
                (
                    "SELECT stage, COUNT(*) AS n, SUM(amount) AS amount FROM funnel_opportunities"
                    " WHERE status = 'open' AND qualification <> 'nurturing'"
                    " AND stage_entered_at <= %s",
                    [at],
                ),
            ):
                for row in tx.execute(f"{sql}{conditions} GROUP BY stage", [*extra, *params]):
                    totals = sums[int(row["stage"])]
                    totals[0] += int(row["n"])
                    totals[1] += as_decimal(row["amount"])
    stages = []
    for live in current.stages[:LAST_OPEN_STAGE]:
        expected_count = sums[live.stage][0] / len(moments)
        expected_amount = sums[live.stage][1] / len(moments)
        count_ratio = _ratio(Decimal(live.count), expected_count)
        stages.append(
            FunnelHealthStage(
                stage=live.stage,
                count=live.count,
                expected_count=expected_count.quantize(Decimal("0.01")),
                count_ratio=count_ratio,
                amount=live.amount,
                expected_amount=expected_amount.quantize(Decimal("0.01")),
                amount_ratio=_ratio(live.amount, expected_amount),
                label=health_label(count_ratio),
            )
        )
    return FunnelHealth(history_moments=moments, stages=stages)


def _ratio(value: Decimal, expected: Decimal) -> Decimal | None:
    if expected == 0:
        return None
    return (value / expected).quantize(Decimal("0.0001"))
