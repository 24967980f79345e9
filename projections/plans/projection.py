"""The plans projection: every plan, every node's targets, revisions and proposals.

Tables: ``plans`` (one row per plan, with the unit it covers), ``plan_targets`` (every
node's targets), ``plan_revisions`` (every revision with direction and reason) and
``plan_proposals`` (every bottom-up proposal of a node's targets).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from aggregates.plan import ROOT
from events import plan as plan_events
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    create_table,
    insert_rows,
    keys_from_earlier_batches,
    sql_value,
    topics_of,
    write_rows,
)
from projections.store import Row, Transaction

PLAN_COLUMNS = (
    "plan_id", "name", "period", "status", "revision_count", "drafted_by", "drafted_at", "unit",
)  # fmt: skip
REVISION_COLUMNS = ("plan_id", "version", "recorded_at", "actor", "direction", "reason", "changes")
PROPOSAL_COLUMNS = ("plan_id", "version", "recorded_at", "actor", "path", "targets", "reason")
_PLAN_EVENT_TYPES = (
    plan_events.PlanDrafted,
    plan_events.TargetsDecomposed,
    plan_events.PlanRevised,
    plan_events.PlanApproved,
    plan_events.PlanProposalMade,
)
_PLAN_EVENTS = frozenset(cls.__name__ for cls in _PLAN_EVENT_TYPES)
ACTUAL_METRICS = ("revenue", "volume")


class PlanProjection(Projection):
    """Plans, their targets at every node and their revisions."""

    name = "plans"
    topics = topics_of(_PLAN_EVENT_TYPES)
    tables = ("plans", "plan_targets", "plan_revisions", "plan_proposals")

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "plans ("
            "plan_id TEXT PRIMARY KEY, name TEXT NOT NULL, period TEXT NOT NULL, "
            "status TEXT NOT NULL, revision_count INTEGER NOT NULL, drafted_by TEXT NOT NULL, "
            "drafted_at TEXT NOT NULL, unit TEXT)",
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
        create_table(
            tx,
            "plan_proposals ("
            "plan_id TEXT NOT NULL, version INTEGER NOT NULL, recorded_at TEXT NOT NULL, "
            "actor TEXT NOT NULL, path TEXT NOT NULL, targets TEXT NOT NULL, "
            "reason TEXT NOT NULL, PRIMARY KEY (plan_id, version))",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        relevant = [e for e in events if e.type_name in _PLAN_EVENTS]
        if not relevant:
            return
        plans = KeyedRows("plans", "plan_id", PLAN_COLUMNS)
        plans.load(tx, keys_from_earlier_batches(relevant, "PlanDrafted"))
        targets: dict[tuple[str, str, str], Decimal] = {}
        revisions: list[Row] = []
        proposals: list[Row] = []
        for recorded in relevant:
            if recorded.type_name == "PlanProposalMade":
                proposals.append(_proposal_row(recorded))
            else:
                _apply_to_plan(recorded, plans, targets, revisions)
        plans.flush(tx)
        write_rows(
            tx,
            "plan_targets",
            ("plan_id", "path", "metric", "target"),
            [[*key, sql_value(amount)] for key, amount in sorted(targets.items())],
            " ON CONFLICT (plan_id, path, metric) DO UPDATE SET target = excluded.target",
        )
        insert_rows(tx, "plan_revisions", REVISION_COLUMNS, revisions)
        insert_rows(tx, "plan_proposals", PROPOSAL_COLUMNS, proposals)


def _apply_to_plan(
    recorded: RecordedEvent,
    plans: KeyedRows,
    targets: dict[tuple[str, str, str], Decimal],
    revisions: list[Row],
) -> None:
    """One plan event: the plan's row, the targets it sets and the revision it records."""
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
                "unit": event.unit,
            }
        )
        for metric, amount in event.targets.items():
            targets[(plan_id, ROOT, metric)] = amount
        return
    plan = plans.get(plan_id)
    if plan is None:
        return
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
        plans.put({**plan, "revision_count": int(plan["revision_count"]) + 1, "status": status})
        revisions.append(_revision_row(recorded))
    else:
        plans.put({**plan, "status": "approved"})


def _revision_row(recorded: RecordedEvent) -> Row:
    event = recorded.event
    return {
        "plan_id": recorded.aggregate_id,
        "version": event.originator_version,
        "recorded_at": recorded.recorded_at,
        "actor": recorded.actor,
        "direction": event.direction,
        "reason": event.reason,
        "changes": json.dumps(event.changes, default=str, sort_keys=True),
    }


def _proposal_row(recorded: RecordedEvent) -> Row:
    event = recorded.event
    return {
        "plan_id": recorded.aggregate_id,
        "version": event.originator_version,
        "recorded_at": recorded.recorded_at,
        "actor": recorded.actor,
        "path": event.path,
        "targets": json.dumps(event.targets, default=str, sort_keys=True),
        "reason": event.reason,
    }
