"""The customer-resource (reverse) plan: from the revenue still to win, the average deal
size and historical conversion, the deals needed at each stage now, against the live
funnel."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.errors import NotFoundError
from aggregates.funnel import LAST_OPEN_STAGE, WON_STAGE
from aggregates.plan import ROOT
from projections.base import (
    as_decimal,
)
from projections.conversion import stage_conversion_rates
from projections.plans.attainment import SubtreeOf, node_dimensions, plan_row, won_condition
from projections.store import ReadStore, Transaction


class StageRequirement(BaseModel):
    """How many deals stage ``stage`` must hold now to close the gap, against the live count."""

    stage: int = Field(examples=[5])
    win_probability_from_here: Decimal | None = Field(examples=["0.35"])
    needed: int | None = Field(examples=[20])
    live: int = Field(examples=[14])
    shortfall: int | None = Field(examples=[6])


class CustomerResourcePlan(BaseModel):
    """From the remaining revenue target, the average deal size and historical conversion,
    the deals needed at each stage now, compared with the live funnel."""

    plan_id: str
    path: str = Field(examples=["total/region=east"])
    target: Decimal
    won: Decimal
    remaining: Decimal
    average_deal_size: Decimal | None
    deals_to_win: int | None
    stages: list[StageRequirement]


def query_customer_resource_plan(
    database: ReadStore, plan_id: str, subtree_of: SubtreeOf, path: str = ROOT
) -> CustomerResourcePlan:
    """The customer-resource plan for one node of the plan (default: the whole plan)."""
    with database.transaction() as tx:
        plan = plan_row(tx, plan_id)
        rows = tx.execute(
            "SELECT target FROM plan_targets WHERE plan_id = %s AND path = %s AND metric = %s",
            [plan_id, path, "revenue"],
        )
        if not rows:
            raise NotFoundError(f"plan {plan_id} has no revenue target at {path!r}")
        target = as_decimal(rows[0]["target"])
        dimensions = node_dimensions(path)
        condition, params = won_condition(dimensions, plan["period"], subtree_of, plan["unit"])
        won = as_decimal(
            tx.execute(
                f"SELECT SUM(won_amount) AS amount FROM funnel_opportunities WHERE {condition}",
                params,
            )[0]["amount"]
        )
        average = tx.execute(
            "SELECT AVG(won_amount) AS amount FROM funnel_opportunities WHERE status = 'won'"
        )[0]["amount"]
        live_condition = condition.replace(
            "status = 'won'", "status = 'open' AND qualification <> 'nurturing'", 1
        )
        live_condition = live_condition.replace("closed_on", "expected_close")
        live = _live_by_stage(tx, live_condition, params)
        rates = stage_conversion_rates(tx)
    remaining = max(Decimal(0), target - won)
    average_deal = as_decimal(average).quantize(Decimal("0.01")) if average else None
    to_win = math.ceil(remaining / average_deal) if average_deal else None
    stages = _stage_requirements(to_win, rates, live)
    return CustomerResourcePlan(
        plan_id=plan_id,
        path=path,
        target=target,
        won=won,
        remaining=remaining,
        average_deal_size=average_deal,
        deals_to_win=to_win,
        stages=stages,
    )


def _live_by_stage(tx: Transaction, condition: str, params: list[Any]) -> dict[int, int]:
    """Open deals in the sales funnel matching ``condition``, counted per stage."""
    return {
        int(r["stage"]): int(r["n"])
        for r in tx.execute(
            "SELECT stage, COUNT(*) AS n FROM funnel_opportunities "
            f"WHERE {condition} GROUP BY stage",
            params,
        )
    }


def _stage_requirements(
    to_win: int | None, rates: dict[int, Decimal | None], live: dict[int, int]
) -> list[StageRequirement]:
    """Per open stage: the deals needed there now to win ``to_win``, against the live ones."""
    stages = []
    for stage in range(1, LAST_OPEN_STAGE + 1):
        probability = _win_probability(rates, stage)
        needed = (
            math.ceil(Decimal(to_win) / probability) if to_win is not None and probability else None
        )
        stages.append(
            StageRequirement(
                stage=stage,
                win_probability_from_here=probability.quantize(Decimal("0.0001"))
                if probability is not None
                else None,
                needed=needed,
                live=live.get(stage, 0),
                shortfall=max(0, needed - live.get(stage, 0)) if needed is not None else None,
            )
        )
    return stages


def _win_probability(rates: dict[int, Decimal | None], stage: int) -> Decimal | None:
    probability = Decimal(1)
    for step in range(stage, WON_STAGE):
        rate = rates.get(step)
        if rate is None:
            return None
        probability *= rate
    return probability
