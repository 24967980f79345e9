"""The funnel: open deals per stage and won deals, live from the totals (as of a past
moment: ``as_of.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.funnel import (
    LAST_OPEN_STAGE,
    STAGE_NAMES,
    STAGE_PROBABILITY,
    WON_STAGE,
)
from projections.base import as_decimal
from projections.funnel.filters import FunnelFilter
from projections.funnel.fold import funnel_status
from projections.store import ReadStore, Row


class FunnelStage(BaseModel):
    """One funnel stage: how many deals, their value and their probability-weighted value."""

    stage: int = Field(examples=[3])
    name: str = Field(examples=[STAGE_NAMES[3]])
    probability: Decimal = Field(examples=["0.20"])
    count: int = Field(examples=[12])
    amount: Decimal = Field(examples=["480000"])
    weighted_amount: Decimal = Field(examples=["96000"])


class Funnel(BaseModel):
    """Open deals per stage 1–7 and won deals as stage 8 (closed in the close period, if given).

    Deals disqualified into nurturing are not in the stages: they are counted apart.
    """

    as_of: datetime | None = None
    stages: list[FunnelStage]
    open_count: int
    open_amount: Decimal
    weighted_amount: Decimal
    nurturing_count: int = Field(
        0,
        description="open deals disqualified and sent back to marketing for nurturing",
        examples=[4],
    )
    nurturing_amount: Decimal = Field(Decimal(0), examples=["120000"])


StageTotals = dict[tuple[int, str], tuple[int, Decimal]]
"""(stage, funnel status) → (count, amount)."""


Probabilities = Mapping[int, Decimal]
"""Each stage's win probability (the configuration's in force; default the brief's)."""


def funnel_from_totals(
    totals: StageTotals, as_of: datetime | None = None, probabilities: Probabilities | None = None
) -> Funnel:
    """The funnel of ``totals`` (per stage and funnel status), weighted by ``probabilities``."""
    probabilities = probabilities or STAGE_PROBABILITY
    stages = []
    for stage in range(1, WON_STAGE + 1):
        status = "won" if stage == WON_STAGE else "open"
        count, amount = totals.get((stage, status), (0, Decimal(0)))
        probability = probabilities.get(stage, STAGE_PROBABILITY[stage])
        stages.append(
            FunnelStage(
                stage=stage,
                name=STAGE_NAMES[stage],
                probability=probability,
                count=count,
                amount=amount,
                weighted_amount=(amount * probability).quantize(Decimal("0.01")),
            )
        )
    open_stages = [s for s in stages if s.stage <= LAST_OPEN_STAGE]
    nurturing = [v for (_, status), v in totals.items() if status == "nurturing"]
    return Funnel(
        as_of=as_of,
        stages=stages,
        open_count=sum(s.count for s in open_stages),
        open_amount=sum((s.amount for s in open_stages), Decimal(0)),
        weighted_amount=sum((s.weighted_amount for s in open_stages), Decimal(0)),
        nurturing_count=sum(n for n, _ in nurturing),
        nurturing_amount=sum((amount for _, amount in nurturing), Decimal(0)),
    )


def add_total(totals: StageTotals, stage: int, status: str, n: int, amount: Decimal) -> None:
    """Add ``n`` deals worth ``amount`` to ``totals``."""
    count, total = totals.get((stage, status), (0, Decimal(0)))
    totals[(stage, status)] = (count + n, total + amount)


def query_funnel(
    database: ReadStore,
    selection: FunnelFilter = FunnelFilter(),
    probabilities: Probabilities | None = None,
) -> Funnel:
    """The live funnel, from the projection's rows.

    Filtered by owners only (or not at all), it sums the per owner/stage totals. Filtered
    by region, product, source and a close period of whole months (year, quarter, month),
    it sums the per-dimension totals. Otherwise (owners with other criteria, a week or a
    day) it reads the matching deals through an index.
    """
    if selection.by_owners_only():
        return _funnel_from_totals_table(
            database, "funnel_stage_totals", selection.sql(), probabilities
        )
    if selection.owner_ids is None and selection.in_whole_months():
        return _funnel_from_totals_table(
            database, "funnel_dimension_totals", selection.month_sql(), probabilities
        )
    conditions, params = selection.sql()
    won_conditions, won_params = selection.sql(close_column="closed_on")
    with database.transaction() as tx:
        if tx.dialect == "postgres":
            # A generic plan (chosen once the statement is prepared) ignores how few owners
            # and how long a period were asked for, and left the covering owner index.
            tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = tx.execute(
            "SELECT stage, qualification = 'nurturing' AS nurturing, COUNT(*) AS n, "
            "SUM(amount) AS amount FROM funnel_opportunities "
            f"WHERE status = 'open'{conditions} GROUP BY stage, qualification = 'nurturing'",
            params,
        )
        won = tx.execute(
            "SELECT COUNT(*) AS n, SUM(won_amount) AS amount FROM funnel_opportunities "
            f"WHERE status = 'won'{won_conditions}",
            won_params,
        )
    totals: StageTotals = {}
    for row in rows:
        status = "nurturing" if row["nurturing"] else "open"
        add_total(totals, int(row["stage"]), status, int(row["n"]), as_decimal(row["amount"]))
    add_total(totals, WON_STAGE, "won", int(won[0]["n"]), as_decimal(won[0]["amount"]))
    return funnel_from_totals(totals, probabilities=probabilities)


def _funnel_from_totals_table(
    database: ReadStore,
    table: str,
    where: tuple[str, list[Any]],
    probabilities: Probabilities | None = None,
) -> Funnel:
    conditions, params = where
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT stage, status, SUM(count) AS n, SUM(amount) AS amount FROM {table} "
            f"WHERE status IN ('open', 'nurturing', 'won'){conditions} GROUP BY stage, status",
            params,
        )
    totals: StageTotals = {}
    for row in rows:
        stage = WON_STAGE if row["status"] == "won" else int(row["stage"])
        add_total(totals, stage, row["status"], int(row["n"]), as_decimal(row["amount"]))
    return funnel_from_totals(totals, probabilities=probabilities)


def funnel_from_deals(
    deals: Iterable[Row],
    selection: FunnelFilter = FunnelFilter(),
    as_of: datetime | None = None,
    probabilities: Probabilities | None = None,
) -> Funnel:
    """The funnel over in-memory deal rows (for as-of queries)."""
    totals: StageTotals = {}
    for row in deals:
        status = funnel_status(row)
        if status == "won" and selection.matches(row, close_column="closed_on"):
            add_total(totals, WON_STAGE, status, 1, as_decimal(row["won_amount"]))
        elif status in ("open", "nurturing") and selection.matches(row):
            add_total(totals, int(row["stage"]), status, 1, as_decimal(row["amount"]))
    return funnel_from_totals(totals, as_of, probabilities)
