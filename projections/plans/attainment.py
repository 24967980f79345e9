"""Plan attainment: targets along every decomposition dimension against won business."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.errors import NotFoundError
from aggregates.plan import period_bounds
from projections.base import (
    as_decimal,
    in_clause,
)
from projections.plans.projection import PLAN_COLUMNS, PROPOSAL_COLUMNS, REVISION_COLUMNS
from projections.store import ReadStore, Row, Transaction


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


class PlanProposalView(BaseModel):
    """A bottom-up proposal of one node's targets by the person the node is for."""

    version: int
    recorded_at: str
    actor: str = Field(examples=["rep-north-2"])
    path: str = Field(examples=["total/region=north/employee=rep-north-2"])
    targets: dict[str, Decimal] = Field(examples=[{"revenue": "900000"}])
    reason: str


class PlanAttainment(BaseModel):
    """Plan vs actual at every node of the plan's decomposition."""

    plan_id: str
    name: str
    period: str
    unit: str | None = Field(
        description="the manager whose subtree the plan covers; its actuals are that "
        "subtree's won deals (null: the whole company)",
        examples=["mgr-north"],
    )
    status: str = Field(examples=["approved"])
    nodes: list[NodeAttainment]
    revisions: list[PlanRevisionView]
    proposals: list[PlanProposalView]


SubtreeOf = Callable[[str], set[str]]
"""A department key (a manager's person id) → everyone in that manager's subtree."""


def plan_row(tx: Transaction, plan_id: str) -> Row:
    rows = tx.execute(f"SELECT {', '.join(PLAN_COLUMNS)} FROM plans WHERE plan_id = %s", [plan_id])
    if not rows:
        raise NotFoundError(f"no plan {plan_id}")
    return rows[0]


def node_dimensions(path: str) -> dict[str, str]:
    return dict(segment.split("=", 1) for segment in path.split("/")[1:])


def won_condition(
    dimensions: dict[str, str], period: str, subtree_of: SubtreeOf, unit: str | None = None
) -> tuple[str, list[Any]]:
    """The won deals a node counts: in its period and its dimensions' keys, and owned in
    the plan's unit (``unit``: a manager, their subtree; None: anyone)."""
    start, end = period_bounds(dimensions.get("period", period))
    conditions = ["status = 'won'", "closed_on >= %s", "closed_on <= %s"]
    params: list[Any] = [start.isoformat(), end.isoformat()]
    if unit is not None:
        dimensions = {"department": unit, **dimensions}
        if dimensions["department"] != unit:  # a department below: both hold
            members = sorted(subtree_of(unit))
            conditions.append(f"owner_id {in_clause(members)}")
            params.extend(members)
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
        plan = plan_row(tx, plan_id)
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
        proposal_rows = tx.execute(
            f"SELECT {', '.join(PROPOSAL_COLUMNS)} FROM plan_proposals WHERE plan_id = %s "
            "ORDER BY version",
            [plan_id],
        )
        targets: dict[str, dict[str, Decimal]] = {}
        for row in target_rows:
            targets.setdefault(row["path"], {})[row["metric"]] = as_decimal(row["target"])
        nodes = _node_attainments(tx, plan, targets, subtree_of)
    return PlanAttainment(
        plan_id=plan_id,
        name=plan["name"],
        period=plan["period"],
        unit=plan["unit"],
        status=plan["status"],
        nodes=nodes,
        revisions=[
            PlanRevisionView(**{**row, "changes": json.loads(row["changes"])})
            for row in revision_rows
        ],
        proposals=[
            PlanProposalView(**{**row, "targets": json.loads(row["targets"])})
            for row in proposal_rows
        ],
    )


def _node_attainments(
    tx: Transaction,
    plan: Row,
    targets: dict[str, dict[str, Decimal]],
    subtree_of: SubtreeOf,
) -> list[NodeAttainment]:
    """Each node's targets against the won amount and won deals its dimensions select."""
    nodes = []
    for path, node_targets in targets.items():
        dimensions = node_dimensions(path)
        condition, params = won_condition(dimensions, plan["period"], subtree_of, plan["unit"])
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
    return nodes


def _share(actual: Decimal, target: Decimal) -> Decimal | None:
    return None if target == 0 else (actual / target).quantize(Decimal("0.0001"))
