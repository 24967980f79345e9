"""Sales plans against results: targets along every decomposition dimension vs won
business, and the customer-resource plan (how many deals are needed at each stage now).

Tables: ``plans`` (one row per plan), ``plan_targets`` (every node's targets) and
``plan_revisions`` (every revision with direction and reason).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.errors import NotFoundError
from aggregates.funnel import LAST_OPEN_STAGE, WON_STAGE
from aggregates.plan import ROOT, period_bounds
from events import plan as plan_events
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    as_decimal,
    create_table,
    in_clause,
    insert_rows,
    keys_from_earlier_batches,
    sql_value,
    topics_of,
    write_rows,
)
from projections.conversion import stage_conversion_rates
from projections.store import ReadStore, Row, Transaction

PLAN_COLUMNS = ("plan_id", "name", "period", "status", "revision_count", "drafted_by", "drafted_at")
REVISION_COLUMNS = ("plan_id", "version", "recorded_at", "actor", "direction", "reason", "changes")
_PLAN_EVENT_TYPES = (
    plan_events.PlanDrafted,
    plan_events.TargetsDecomposed,
    plan_events.PlanRevised,
    plan_events.PlanApproved,
)
_PLAN_EVENTS = frozenset(cls.__name__ for cls in _PLAN_EVENT_TYPES)
ACTUAL_METRICS = ("revenue", "volume")


class PlanProjection(Projection):
    """Plans, their targets at every node and their revisions."""

    name = "plans"
    topics = topics_of(_PLAN_EVENT_TYPES)
    tables = ("plans", "plan_targets", "plan_revisions")

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "plans ("
            "plan_id TEXT PRIMARY KEY, name TEXT NOT NULL, period TEXT NOT NULL, "
            "status TEXT NOT NULL, revision_count INTEGER NOT NULL, drafted_by TEXT NOT NULL, "
            "drafted_at TEXT NOT NULL)",
        )
        create_table(
            tx,
            "plan_targets ("
            "plan_id TEXT NOT NULL, path TEXT NOT NULL, metric TEXT NOT NULL, "
            "target NUMERIC NOT NULL, PRIMARY KEY (plan_id, path, metric))",
        )
        create_table(
            tx,
            "plan_revisions ("
            "plan_id TEXT NOT NULL, version INTEGER NOT NULL, recorded_at TEXT NOT NULL, "
            "actor TEXT NOT NULL, direction TEXT NOT NULL, reason TEXT NOT NULL, "
            "changes TEXT NOT NULL, PRIMARY KEY (plan_id, version))",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        relevant = [e for e in events if e.type_name in _PLAN_EVENTS]
        if not relevant:
            return
        plans = KeyedRows("plans", "plan_id", PLAN_COLUMNS)
        plans.load(tx, keys_from_earlier_batches(relevant, "PlanDrafted"))
        targets: dict[tuple[str, str, str], Decimal] = {}
        revisions: list[Row] = []
        for recorded in relevant:
            event, plan_id = recorded.event, recorded.aggregate_id
            if recorded.type_name == "PlanDrafted":
                plans.put(
                    {
                        "plan_id": plan_id,
                        "name": event.name,
                        "period": event.period,
                        "status": "draft",
                        "revision_count": 0,
                        "drafted_by": recorded.actor,
                        "drafted_at": recorded.recorded_at,
                    }
                )
                for metric, amount in event.targets.items():
                    targets[(plan_id, ROOT, metric)] = amount
                continue
            plan = plans.get(plan_id)
            if plan is None:
                continue
            if recorded.type_name == "TargetsDecomposed":
                for key, allocation in event.allocations.items():
                    path = f"{event.parent}/{event.dimension}={key}"
                    for metric, amount in allocation.items():
                        targets[(plan_id, path, metric)] = amount
            elif recorded.type_name == "PlanRevised":
                for path, changes in event.changes.items():
                    for metric, amount in changes.items():
                        targets[(plan_id, path, metric)] = amount
                status = "revised" if plan["status"] == "approved" else plan["status"]
                plans.put(
                    {**plan, "revision_count": int(plan["revision_count"]) + 1, "status": status}
                )
                revisions.append(
                    {
                        "plan_id": plan_id,
                        "version": event.originator_version,
                        "recorded_at": recorded.recorded_at,
                        "actor": recorded.actor,
                        "direction": event.direction,
                        "reason": event.reason,
                        "changes": json.dumps(event.changes, default=str, sort_keys=True),
                    }
                )
            else:
                plans.put({**plan, "status": "approved"})
        plans.flush(tx)
        write_rows(
            tx,
            "plan_targets",
            ("plan_id", "path", "metric", "target"),
            [[*key, sql_value(amount)] for key, amount in sorted(targets.items())],
            " ON CONFLICT (plan_id, path, metric) DO UPDATE SET target = excluded.target",
        )
        insert_rows(tx, "plan_revisions", REVISION_COLUMNS, revisions)


# Queries.


class NodeAttainment(BaseModel):
    """One plan node: its targets, what was won against them, and the ratio."""

    path: str = Field(examples=["total/region=east/period=2026-Q2"])
    dimensions: dict[str, str] = Field(examples=[{"region": "east", "period": "2026-Q2"}])
    period: str = Field(examples=["2026-Q2"])
    targets: dict[str, Decimal] = Field(examples=[{"revenue": "3000000", "volume": "12"}])
    actuals: dict[str, Decimal] = Field(
        description="revenue (won amount) and volume (won deals); other metrics are not "
        "derived from the funnel",
        examples=[{"revenue": "1800000", "volume": "7"}],
    )
    attainment: dict[str, Decimal | None] = Field(examples=[{"revenue": "0.60", "volume": "0.58"}])


class PlanRevisionView(BaseModel):
    version: int
    recorded_at: str
    actor: str
    direction: str = Field(examples=["top_down"])
    reason: str
    changes: dict[str, dict[str, Decimal]]


class PlanAttainment(BaseModel):
    """Plan vs actual at every node of the plan's decomposition."""

    plan_id: str
    name: str
    period: str
    status: str = Field(examples=["approved"])
    nodes: list[NodeAttainment]
    revisions: list[PlanRevisionView]


SubtreeOf = Callable[[str], set[str]]
"""A department key (a manager's person id) → everyone in that manager's subtree."""


def _plan_row(tx: Transaction, plan_id: str) -> Row:
    rows = tx.execute(f"SELECT {', '.join(PLAN_COLUMNS)} FROM plans WHERE plan_id = %s", [plan_id])
    if not rows:
        raise NotFoundError(f"no plan {plan_id}")
    return rows[0]


def node_dimensions(path: str) -> dict[str, str]:
    return dict(segment.split("=", 1) for segment in path.split("/")[1:])


def _won_condition(
    dimensions: dict[str, str], period: str, subtree_of: SubtreeOf
) -> tuple[str, list[Any]]:
    start, end = period_bounds(dimensions.get("period", period))
    conditions = ["status = 'won'", "closed_on >= %s", "closed_on <= %s"]
    params: list[Any] = [start.isoformat(), end.isoformat()]
    columns = {
        "product": "product",
        "customer": "customer_id",
        "region": "region",
        "employee": "owner_id",
    }
    for dimension, key in dimensions.items():
        if dimension in columns:
            conditions.append(f"{columns[dimension]} = %s")
            params.append(key)
        elif dimension == "department":
            members = sorted(subtree_of(key))
            conditions.append(f"owner_id {in_clause(members)}")
            params.extend(members)
    return " AND ".join(conditions), params


def query_plan_attainment(
    database: ReadStore, plan_id: str, subtree_of: SubtreeOf
) -> PlanAttainment:
    """Target vs won amount (revenue) and won deals (volume) at every node of the plan."""
    with database.transaction() as tx:
        plan = _plan_row(tx, plan_id)
        target_rows = tx.execute(
            "SELECT path, metric, target FROM plan_targets WHERE plan_id = %s "
            "ORDER BY path, metric",
            [plan_id],
        )
        revision_rows = tx.execute(
            f"SELECT {', '.join(REVISION_COLUMNS)} FROM plan_revisions WHERE plan_id = %s "
            "ORDER BY version",
            [plan_id],
        )
        targets: dict[str, dict[str, Decimal]] = {}
        for row in target_rows:
            targets.setdefault(row["path"], {})[row["metric"]] = as_decimal(row["target"])
        nodes = []
        for path, node_targets in targets.items():
            dimensions = node_dimensions(path)
            condition, params = _won_condition(dimensions, plan["period"], subtree_of)
            won = tx.execute(
                "SELECT COUNT(*) AS n, SUM(won_amount) AS amount FROM funnel_opportunities "
                f"WHERE {condition}",
                params,
            )[0]
            actuals = {"revenue": as_decimal(won["amount"]), "volume": Decimal(int(won["n"]))}
            nodes.append(
                NodeAttainment(
                    path=path,
                    dimensions=dimensions,
                    period=str(dimensions.get("period", plan["period"])),
                    targets=node_targets,
                    actuals=actuals,
                    attainment={
                        metric: _share(actuals[metric], target) if metric in actuals else None
                        for metric, target in node_targets.items()
                    },
                )
            )
    return PlanAttainment(
        plan_id=plan_id,
        name=plan["name"],
        period=plan["period"],
        status=plan["status"],
        nodes=nodes,
        revisions=[
            PlanRevisionView(**{**row, "changes": json.loads(row["changes"])})
            for row in revision_rows
        ],
    )


def _share(actual: Decimal, target: Decimal) -> Decimal | None:
    return None if target == 0 else (actual / target).quantize(Decimal("0.0001"))


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
        plan = _plan_row(tx, plan_id)
        rows = tx.execute(
            "SELECT target FROM plan_targets WHERE plan_id = %s AND path = %s AND metric = %s",
            [plan_id, path, "revenue"],
        )
        if not rows:
            raise NotFoundError(f"plan {plan_id} has no revenue target at {path!r}")
        target = as_decimal(rows[0]["target"])
        dimensions = node_dimensions(path)
        condition, params = _won_condition(dimensions, plan["period"], subtree_of)
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
        live = {
            int(r["stage"]): int(r["n"])
            for r in tx.execute(
                "SELECT stage, COUNT(*) AS n FROM funnel_opportunities "
                f"WHERE {live_condition} GROUP BY stage",
                params,
            )
        }
        rates = stage_conversion_rates(tx)
    remaining = max(Decimal(0), target - won)
    average_deal = as_decimal(average).quantize(Decimal("0.01")) if average else None
    to_win = math.ceil(remaining / average_deal) if average_deal else None
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


def _win_probability(rates: dict[int, Decimal | None], stage: int) -> Decimal | None:
    probability = Decimal(1)
    for step in range(stage, WON_STAGE):
        rate = rates.get(step)
        if rate is None:
            return None
        probability *= rate
    return probability
