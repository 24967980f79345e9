"""The forecast projection: every submission, adjustment and quota, and each deal's owner
and won amount as recorded, one row per event.

Tables: ``forecast_owners`` (whose forecast for which period), ``forecast_submissions``,
``forecast_lines`` (each submitted deal with its category), ``forecast_revisions``
(adjustments) and ``forecast_quotas``, one row per event; ``forecast_deals`` (each deal's
owner and outcome) and ``forecast_actuals`` (every change of a won amount, with when it
was recorded), so "what did we believe, and what had we sold, on date X" is a query.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from aggregates.forecast import line_category
from events import forecast as forecast_events
from events import opportunity as opportunity_events
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    as_decimal,
    create_table,
    insert_rows,
    keys_from_earlier_batches,
    topics_of,
)
from projections.store import Row, Transaction

OWNER_COLUMNS = ("forecast_id", "person_id", "period")
_COMMON = ("forecast_id", "version", "person_id", "period", "recorded_at", "actor")
SUBMISSION_COLUMNS = (
    *_COMMON,
    "own_total",
    "team_total",
    "total",
    "opportunity_ids",
)
LINE_COLUMNS = (*_COMMON, "position", "opportunity_id", "category", "amount")
REVISION_COLUMNS = (*_COMMON, "previous_total", "adjusted_total", "reason")
QUOTA_COLUMNS = (*_COMMON, "amount", "reason")
DEAL_COLUMNS = ("opportunity_id", "owner_id", "status", "won_amount", "closed_on")
ACTUAL_COLUMNS = (
    "position",
    "seq",
    "recorded_at",
    "opportunity_id",
    "owner_id",
    "closed_on",
    "amount",
)
_FORECAST_EVENT_TYPES = (
    forecast_events.ForecastOpened,
    forecast_events.ForecastSubmitted,
    forecast_events.ForecastRevised,
    forecast_events.QuotaSet,
)
_DEAL_EVENT_TYPES = (
    opportunity_events.OpportunityOpened,
    opportunity_events.OpportunityWon,
    opportunity_events.OpportunityReopened,
    opportunity_events.PrimaryOwnerChanged,
)
_FORECAST_EVENTS = frozenset(cls.__name__ for cls in _FORECAST_EVENT_TYPES)
_DEAL_EVENTS = frozenset(cls.__name__ for cls in _DEAL_EVENT_TYPES)


class ForecastProjection(Projection):
    """Every forecast submission, adjustment and quota per person and period, and the
    won amounts they are measured against."""

    name = "forecasts"
    rows_version = 2
    topics = topics_of((*_FORECAST_EVENT_TYPES, *_DEAL_EVENT_TYPES))
    tables = (
        "forecast_owners",
        "forecast_submissions",
        "forecast_lines",
        "forecast_revisions",
        "forecast_quotas",
        "forecast_deals",
        "forecast_actuals",
    )
    indexes = {
        "forecast_submissions_period": "forecast_submissions (period, person_id)",
        "forecast_lines_period": "forecast_lines (period, person_id)",
        "forecast_revisions_period": "forecast_revisions (period, person_id)",
        "forecast_quotas_period": "forecast_quotas (period, person_id)",
        "forecast_actuals_closed": "forecast_actuals (closed_on)",
    }

    def create_tables(self, tx: Transaction) -> None:
        common = (
            "forecast_id TEXT NOT NULL, version INTEGER NOT NULL, person_id TEXT NOT NULL, "
            "period TEXT NOT NULL, recorded_at TEXT NOT NULL, actor TEXT NOT NULL, "
        )
        create_table(
            tx,
            "forecast_owners ("
            "forecast_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, period TEXT NOT NULL)",
        )
        create_table(
            tx,
            f"forecast_submissions ({common}"
            "own_total NUMERIC NOT NULL, team_total NUMERIC NOT NULL, total NUMERIC NOT NULL, "
            "opportunity_ids TEXT NOT NULL, PRIMARY KEY (forecast_id, version))",
        )
        create_table(
            tx,
            f"forecast_lines ({common}position BIGINT NOT NULL, opportunity_id TEXT NOT NULL, "
            "category TEXT NOT NULL, amount NUMERIC NOT NULL, "
            "PRIMARY KEY (forecast_id, version, opportunity_id))",
        )
        create_table(
            tx,
            f"forecast_revisions ({common}"
            "previous_total NUMERIC NOT NULL, adjusted_total NUMERIC NOT NULL, "
            "reason TEXT NOT NULL, PRIMARY KEY (forecast_id, version))",
        )
        create_table(
            tx,
            f"forecast_quotas ({common}amount NUMERIC NOT NULL, reason TEXT NOT NULL, "
            "PRIMARY KEY (forecast_id, version))",
        )
        create_table(
            tx,
            "forecast_deals (opportunity_id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, "
            "status TEXT NOT NULL, won_amount NUMERIC, closed_on TEXT)",
        )
        create_table(
            tx,
            "forecast_actuals (position BIGINT NOT NULL, seq INTEGER NOT NULL, "
            "recorded_at TEXT NOT NULL, opportunity_id TEXT NOT NULL, owner_id TEXT NOT NULL, "
            "closed_on TEXT NOT NULL, amount NUMERIC NOT NULL, PRIMARY KEY (position, seq))",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        forecast_events = [e for e in events if e.type_name in _FORECAST_EVENTS]
        deal_events = [e for e in events if e.type_name in _DEAL_EVENTS]
        if forecast_events:
            self._apply_forecast_events(tx, forecast_events)
        if deal_events:
            self._apply_deal_events(tx, deal_events)

    @staticmethod
    def _apply_forecast_events(tx: Transaction, relevant: Sequence[RecordedEvent]) -> None:
        owners = KeyedRows("forecast_owners", "forecast_id", OWNER_COLUMNS)
        owners.load(tx, keys_from_earlier_batches(relevant, "ForecastOpened"))
        rows: dict[str, list[Row]] = {"submissions": [], "lines": [], "revisions": [], "quotas": []}
        for recorded in relevant:
            event = recorded.event
            if recorded.type_name == "ForecastOpened":
                owners.put(
                    {
                        "forecast_id": recorded.aggregate_id,
                        "person_id": event.person_id,
                        "period": event.period,
                    }
                )
                continue
            owner = owners.get(recorded.aggregate_id)
            if owner is not None:
                _forecast_rows(recorded, owner, rows)
        owners.flush(tx)
        insert_rows(tx, "forecast_submissions", SUBMISSION_COLUMNS, rows["submissions"])
        insert_rows(tx, "forecast_lines", LINE_COLUMNS, rows["lines"])
        insert_rows(tx, "forecast_revisions", REVISION_COLUMNS, rows["revisions"])
        insert_rows(tx, "forecast_quotas", QUOTA_COLUMNS, rows["quotas"])

    @staticmethod
    def _apply_deal_events(tx: Transaction, relevant: Sequence[RecordedEvent]) -> None:
        deals = KeyedRows("forecast_deals", "opportunity_id", DEAL_COLUMNS)
        deals.load(tx, keys_from_earlier_batches(relevant, "OpportunityOpened"))
        actuals: list[Row] = []
        for recorded in relevant:
            _apply_to_deal(recorded, deals, actuals)
        deals.flush(tx)
        insert_rows(tx, "forecast_actuals", ACTUAL_COLUMNS, actuals)


def _forecast_rows(recorded: RecordedEvent, owner: Row, rows: dict[str, list[Row]]) -> None:
    event = recorded.event
    common = {
        "forecast_id": recorded.aggregate_id,
        "version": event.originator_version,
        "person_id": owner["person_id"],
        "period": owner["period"],
        "recorded_at": recorded.recorded_at,
        "actor": recorded.actor,
    }
    if recorded.type_name == "ForecastSubmitted":
        rows["submissions"].append(
            {
                **common,
                "own_total": event.own_total,
                "team_total": event.team_total,
                "total": event.total,
                "opportunity_ids": json.dumps([line["opportunity_id"] for line in event.lines]),
            }
        )
        rows["lines"].extend(
            {
                **common,
                "position": recorded.position,
                "opportunity_id": line["opportunity_id"],
                "category": line_category(line),
                "amount": Decimal(line["amount"]),
            }
            for line in event.lines
        )
    elif recorded.type_name == "ForecastRevised":
        rows["revisions"].append(
            {
                **common,
                "previous_total": event.previous_total,
                "adjusted_total": event.adjusted_total,
                "reason": event.reason,
            }
        )
    else:
        rows["quotas"].append({**common, "amount": event.amount, "reason": event.reason})


def _apply_to_deal(recorded: RecordedEvent, deals: KeyedRows, actuals: list[Row]) -> None:
    event, kind = recorded.event, recorded.type_name
    if kind == "OpportunityOpened":
        deals.put(
            {
                "opportunity_id": recorded.aggregate_id,
                "owner_id": event.owner_id,
                "status": "open",
                "won_amount": None,
                "closed_on": None,
            }
        )
        return
    row = deals.get(recorded.aggregate_id)
    if row is None:
        return
    row = dict(row)
    first = len(actuals)

    def change(owner: str, amount: Decimal) -> None:
        actuals.append(
            {
                "position": recorded.position,
                "seq": len(actuals) - first,
                "recorded_at": recorded.recorded_at,
                "opportunity_id": recorded.aggregate_id,
                "owner_id": owner,
                "closed_on": row["closed_on"],
                "amount": amount,
            }
        )

    won = row["status"] == "won"
    if kind == "OpportunityWon":
        row.update(status="won", won_amount=event.amount, closed_on=event.closed_on.isoformat())
        change(row["owner_id"], event.amount)
    elif kind == "OpportunityReopened" and won:
        change(row["owner_id"], -as_decimal(row["won_amount"]))
        row.update(status="open")
    elif kind == "PrimaryOwnerChanged":
        if won:
            change(row["owner_id"], -as_decimal(row["won_amount"]))
            change(event.owner_id, as_decimal(row["won_amount"]))
        row["owner_id"] = event.owner_id
    deals.put(row)
