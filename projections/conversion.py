"""Conversion and velocity, computed over the funnel projection's tables.

Every opportunity's highest stage (``max_stage``) and its finished stage intervals
give: stage-to-stage conversion per entry cohort (the month a deal was opened), win
rate, average days per stage, sales velocity and lead-source effectiveness. Open deals are
those in the sales funnel: deals sent back to marketing for nurturing are counted apart,
and time spent nurturing is not time in a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.funnel import WON_STAGE
from projections.base import as_decimal
from projections.funnel import FunnelFilter
from projections.store import ReadStore, Transaction

SECONDS_PER_DAY = Decimal(86400)
_IN_FUNNEL = "CASE WHEN status = 'open' AND qualification <> 'nurturing' THEN 1 ELSE 0 END"
_NURTURING = "CASE WHEN status = 'open' AND qualification = 'nurturing' THEN 1 ELSE 0 END"
_REACHED = ", ".join(
    f"SUM(CASE WHEN max_stage >= {s} THEN 1 ELSE 0 END) AS reached_{s}"
    for s in range(1, WON_STAGE + 1)
)


def _rate(numerator: int, denominator: int) -> Decimal | None:
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"))


def stage_conversion_rates(tx: Transaction) -> dict[int, Decimal | None]:
    """Historical rate from stage s to s+1 (stage 8: won), over closed deals."""
    row = tx.execute(
        f"SELECT {_REACHED} FROM funnel_opportunities WHERE status IN ('won', 'lost')"
    )[0]
    reached = [int(row[f"reached_{s}"] or 0) for s in range(1, WON_STAGE + 1)]
    return {s: _rate(reached[s], reached[s - 1]) for s in range(1, WON_STAGE)}


class CohortConversion(BaseModel):
    """Deals opened in one month: how far they got."""

    cohort: str = Field(examples=["2026-01"])
    opened: int = Field(examples=[40])
    reached: dict[int, int] = Field(description="deals that reached each stage (8: won)")
    conversion: dict[int, Decimal | None] = Field(
        description="stage s → s+1 conversion rate (7 → 8 is winning)"
    )
    won: int
    lost: int
    win_rate: Decimal | None = Field(description="won ÷ (won + lost)")


class SourceEffectiveness(BaseModel):
    """How well one lead source converts."""

    source: str = Field(examples=["referral"])
    opened: int
    open: int = Field(description="open in the sales funnel")
    nurturing: int = Field(description="open, sent back to marketing for nurturing")
    won: int
    lost: int
    win_rate: Decimal | None
    won_amount: Decimal


class ConversionReport(BaseModel):
    """Conversion by cohort, win rate, time in stage, sales velocity and lead sources."""

    cohorts: list[CohortConversion]
    win_rate: Decimal | None
    average_days_in_stage: dict[int, Decimal]
    open_deals: int = Field(description="open deals in the sales funnel (not nurturing)")
    nurturing_deals: int = Field(description="open deals sent back to marketing for nurturing")
    average_deal_size: Decimal | None
    average_cycle_days: Decimal | None
    sales_velocity_per_day: Decimal | None = Field(
        description="open deals × average won deal size × win rate ÷ average cycle days"
    )
    sources: list[SourceEffectiveness]


def query_conversion(
    database: ReadStore, selection: FunnelFilter | None = None
) -> ConversionReport:
    """The conversion and velocity report for the deals matching ``selection``."""
    where = (selection or FunnelFilter()).sql()
    with database.transaction() as tx:
        cohorts = _cohorts(tx, where)
        days_in_stage = _average_days_in_stage(tx, where)
        velocity = _velocity(tx, where)
        sources = _sources(tx, where)
    return ConversionReport(
        cohorts=cohorts,
        win_rate=velocity.win_rate,
        average_days_in_stage=days_in_stage,
        open_deals=velocity.open_deals,
        nurturing_deals=velocity.nurturing_deals,
        average_deal_size=velocity.average_deal_size,
        average_cycle_days=velocity.average_cycle_days,
        sales_velocity_per_day=velocity.per_day,
        sources=sources,
    )


Where = tuple[str, list[Any]]
"""SQL conditions (each prefixed with AND) and their parameters (``FunnelFilter.sql``)."""


def _cohorts(tx: Transaction, where: Where) -> list[CohortConversion]:
    """Per month of opening: how many deals reached each stage, won and lost."""
    conditions, params = where
    rows = tx.execute(
        f"SELECT SUBSTR(opened_at, 1, 7) AS cohort, COUNT(*) AS opened, {_REACHED}, "
        "SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) AS won, "
        "SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END) AS lost "
        f"FROM funnel_opportunities WHERE 1 = 1{conditions} "
        "GROUP BY SUBSTR(opened_at, 1, 7) ORDER BY cohort",
        params,
    )
    cohorts = []
    for row in rows:
        reached = {s: int(row[f"reached_{s}"] or 0) for s in range(1, WON_STAGE + 1)}
        cohorts.append(
            CohortConversion(
                cohort=row["cohort"],
                opened=int(row["opened"]),
                reached=reached,
                conversion={s: _rate(reached[s + 1], reached[s]) for s in range(1, WON_STAGE)},
                won=int(row["won"] or 0),
                lost=int(row["lost"] or 0),
                win_rate=_rate(int(row["won"] or 0), int(row["won"] or 0) + int(row["lost"] or 0)),
            )
        )
    return cohorts


def _average_days_in_stage(tx: Transaction, where: Where) -> dict[int, Decimal]:
    """Average days of a finished stay in each stage (time spent nurturing left out)."""
    conditions, params = where
    rows = tx.execute(
        "SELECT stage, AVG(seconds) AS seconds FROM funnel_stage_intervals "
        f"WHERE nurturing = 0{conditions} GROUP BY stage ORDER BY stage",
        params,
    )
    return {
        int(r["stage"]): (as_decimal(r["seconds"]) / SECONDS_PER_DAY).quantize(Decimal("0.01"))
        for r in rows
    }


@dataclass(frozen=True)
class _Velocity:
    """The figures of sales velocity and the counts behind them."""

    open_deals: int
    nurturing_deals: int
    win_rate: Decimal | None
    average_deal_size: Decimal | None
    average_cycle_days: Decimal | None
    per_day: Decimal | None


def _velocity(tx: Transaction, where: Where) -> _Velocity:
    """Open deals × average won deal size × win rate ÷ average cycle days."""
    conditions, params = where
    totals = tx.execute(
        f"SELECT SUM({_IN_FUNNEL}) AS open, SUM({_NURTURING}) AS nurturing, "
        "SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) AS won, "
        "SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END) AS lost, "
        "AVG(CASE WHEN status = 'won' THEN won_amount END) AS average_won "
        f"FROM funnel_opportunities WHERE 1 = 1{conditions}",
        params,
    )[0]
    cycle = tx.execute(
        "SELECT SUM(i.seconds) AS seconds FROM funnel_stage_intervals i "
        "JOIN funnel_opportunities o ON o.opportunity_id = i.opportunity_id "
        f"WHERE i.nurturing = 0 AND o.status = 'won'{conditions.replace(' AND ', ' AND o.')}",
        params,
    )[0]
    won, lost, open_deals = (
        int(totals["won"] or 0),
        int(totals["lost"] or 0),
        int(totals["open"] or 0),
    )
    win_rate = _rate(won, won + lost)
    average_deal = (
        as_decimal(totals["average_won"]).quantize(Decimal("0.01"))
        if totals["average_won"] is not None
        else None
    )
    cycle_days = (
        (as_decimal(cycle["seconds"]) / SECONDS_PER_DAY / won).quantize(Decimal("0.01"))
        if won and cycle["seconds"] is not None
        else None
    )
    velocity = None
    if average_deal is not None and win_rate is not None and cycle_days:
        velocity = (open_deals * average_deal * win_rate / cycle_days).quantize(Decimal("0.01"))
    return _Velocity(
        open_deals=open_deals,
        nurturing_deals=int(totals["nurturing"] or 0),
        win_rate=win_rate,
        average_deal_size=average_deal,
        average_cycle_days=cycle_days,
        per_day=velocity,
    )


def _sources(tx: Transaction, where: Where) -> list[SourceEffectiveness]:
    """Each lead source's deals and outcomes, best win rate first."""
    conditions, params = where
    rows = tx.execute(
        f"SELECT source, COUNT(*) AS opened, SUM({_IN_FUNNEL}) AS open, "
        f"SUM({_NURTURING}) AS nurturing, "
        "SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) AS won, "
        "SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END) AS lost, "
        "SUM(CASE WHEN status = 'won' THEN won_amount ELSE 0 END) AS won_amount "
        f"FROM funnel_opportunities WHERE 1 = 1{conditions} GROUP BY source",
        params,
    )
    return sorted(
        (
            SourceEffectiveness(
                source=row["source"],
                opened=int(row["opened"]),
                open=int(row["open"] or 0),
                nurturing=int(row["nurturing"] or 0),
                won=int(row["won"] or 0),
                lost=int(row["lost"] or 0),
                win_rate=_rate(int(row["won"] or 0), int(row["won"] or 0) + int(row["lost"] or 0)),
                won_amount=as_decimal(row["won_amount"]),
            )
            for row in rows
        ),
        key=lambda s: (-(s.win_rate or Decimal(-1)), s.source),
    )
