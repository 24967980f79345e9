"""The monitoring projection: each deal's stage, owner and last activity, customers and
their owners, every ownership transfer, and activity per person and week."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from aggregates.funnel import FIRST_STAGE, WON_STAGE
from events import customer as customer_events
from events import opportunity as opportunity_events
from events.personal import ERASED
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    add_counts,
    create_table,
    insert_rows,
    topics_of,
    week_of,
)
from projections.store import Row, Transaction

DEAL_COLUMNS = (
    "opportunity_id",
    "customer_id",
    "owner_id",
    "title",
    "stage",
    "status",
    "expected_close",
    "last_stage_change_at",
    "last_activity_at",
    "amount",
)
CUSTOMER_COLUMNS = ("customer_id", "name", "owner_id", "registered_at", "registered_by")
TRANSFER_COLUMNS = (
    "position",
    "aggregate_id",
    "aggregate_type",
    "from_owner",
    "to_owner",
    "actor",
    "recorded_at",
    "reason",
)
_DEAL_EVENT_TYPES = (
    opportunity_events.OpportunityOpened,
    opportunity_events.StageAdvanced,
    opportunity_events.OpportunityDisqualified,
    opportunity_events.OpportunityReopened,
    opportunity_events.OpportunityWon,
    opportunity_events.OpportunityLost,
    opportunity_events.CloseDateRevised,
    opportunity_events.PrimaryOwnerChanged,
    opportunity_events.OpportunityActivityLogged,
    opportunity_events.AmountRevised,
)
_CUSTOMER_EVENT_TYPES = (
    customer_events.CustomerRegistered,
    customer_events.CustomerAssigned,
    customer_events.ActivityLogged,
    customer_events.PersonalDataErased,
)
_CHANGING_CUSTOMERS = frozenset({"CustomerAssigned", "PersonalDataErased"})
_DEAL_EVENTS = frozenset(cls.__name__ for cls in _DEAL_EVENT_TYPES)
_CUSTOMER_EVENTS = frozenset(cls.__name__ for cls in _CUSTOMER_EVENT_TYPES)


class MonitoringProjection(Projection):
    """What managers watch day to day: is the process being worked?"""

    name = "monitoring"
    rows_version = 3
    topics = topics_of((*_DEAL_EVENT_TYPES, *_CUSTOMER_EVENT_TYPES))
    tables = (
        "monitoring_deals",
        "monitoring_customers",
        "monitoring_activity_counts",
        "monitoring_ownership_transfers",
    )
    indexes = {
        "monitoring_deals_open": "monitoring_deals (status, expected_close)",
    }

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "monitoring_deals ("
            "opportunity_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, owner_id TEXT NOT NULL, "
            "title TEXT NOT NULL, stage INTEGER NOT NULL, status TEXT NOT NULL, "
            "expected_close TEXT NOT NULL, last_stage_change_at TEXT NOT NULL, "
            "last_activity_at TEXT, amount NUMERIC NOT NULL)",
        )
        create_table(
            tx,
            "monitoring_customers ("
            "customer_id TEXT PRIMARY KEY, name TEXT NOT NULL, owner_id TEXT, "
            "registered_at TEXT NOT NULL, registered_by TEXT NOT NULL)",
        )
        create_table(
            tx,
            "monitoring_activity_counts ("
            "person_id TEXT NOT NULL, week TEXT NOT NULL, kind TEXT NOT NULL, "
            "count INTEGER NOT NULL, PRIMARY KEY (person_id, week, kind))",
        )
        create_table(
            tx,
            "monitoring_ownership_transfers ("
            "position BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL, "
            "aggregate_type TEXT NOT NULL, from_owner TEXT, to_owner TEXT NOT NULL, "
            "actor TEXT NOT NULL, recorded_at TEXT NOT NULL, reason TEXT NOT NULL)",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        pending = self.begin()
        self.apply(tx, pending, events)
        self.flush(tx, pending)

    def begin(self) -> _MonitoringChanges:
        return _MonitoringChanges()

    def apply(self, tx: Transaction, pending: Any, events: Sequence[RecordedEvent]) -> None:
        deal_events = [e for e in events if e.type_name in _DEAL_EVENTS]
        customer_events = [e for e in events if e.type_name in _CUSTOMER_EVENTS]
        if not deal_events and not customer_events:
            return
        deals, customers = pending.deals, pending.customers
        activity, transfers = pending.activity, pending.transfers
        deals.load(tx, _deals_from_earlier_batches(events))
        customers.load(
            tx, (e.aggregate_id for e in customer_events if e.type_name in _CHANGING_CUSTOMERS)
        )
        for recorded in events:
            kind = recorded.type_name
            if kind in _DEAL_EVENTS:
                self._apply_to_deal(recorded, deals, activity, transfers)
            elif kind in _CUSTOMER_EVENTS:
                self._apply_to_customer(recorded, customers, deals, activity, transfers)

    def flush(self, tx: Transaction, pending: Any) -> None:
        pending.deals.flush(tx)
        pending.customers.flush(tx)
        add_counts(
            tx, "monitoring_activity_counts", ("person_id", "week", "kind"), pending.activity
        )
        insert_rows(tx, "monitoring_ownership_transfers", TRANSFER_COLUMNS, pending.transfers)

    @staticmethod
    def _apply_to_deal(
        recorded: RecordedEvent,
        deals: KeyedRows,
        activity: Counter[tuple[str, str, str]],
        transfers: list[Row],
    ) -> None:
        event, kind, at = recorded.event, recorded.type_name, recorded.recorded_at
        if kind == "OpportunityOpened":
            deals.put(
                {
                    "opportunity_id": recorded.aggregate_id,
                    "customer_id": event.customer_id,
                    "owner_id": event.owner_id,
                    "title": event.title,
                    "stage": FIRST_STAGE,
                    "status": "open",
                    "expected_close": event.expected_close.isoformat(),
                    "last_stage_change_at": at,
                    "last_activity_at": None,
                    "amount": event.amount,
                }
            )
            return
        row = deals.rows.get(recorded.aggregate_id)  # (a call less per event)
        if row is None:
            return
        if kind == "OpportunityActivityLogged":  # first: the most frequent
            row["last_activity_at"] = at
            activity[(recorded.actor, week_of(at), event.kind)] += 1
        elif kind == "StageAdvanced":
            row.update(stage=event.to_stage, last_stage_change_at=at)
        elif kind == "OpportunityDisqualified":
            row.update(stage=FIRST_STAGE, last_stage_change_at=at)
        elif kind == "OpportunityReopened":
            row.update(stage=event.stage, status="open", last_stage_change_at=at)
        elif kind == "OpportunityWon":
            row.update(stage=WON_STAGE, status="won", last_stage_change_at=at)
        elif kind == "OpportunityLost":
            row.update(status="lost", last_stage_change_at=at)
        elif kind == "CloseDateRevised":
            row["expected_close"] = event.expected_close.isoformat()
        elif kind == "AmountRevised":
            row["amount"] = event.amount
        elif kind == "PrimaryOwnerChanged":
            transfers.append(
                _transfer(recorded, "opportunity", event.previous_owner_id, event.owner_id)
            )
            row["owner_id"] = event.owner_id
        deals.put(row)  # changed in place: the batch's rows are its own

    @staticmethod
    def _apply_to_customer(
        recorded: RecordedEvent,
        customers: KeyedRows,
        deals: KeyedRows,
        activity: Counter[tuple[str, str, str]],
        transfers: list[Row],
    ) -> None:
        event, kind = recorded.event, recorded.type_name
        if kind == "CustomerRegistered":
            customers.put(
                {
                    "customer_id": recorded.aggregate_id,
                    "name": event.name,
                    "owner_id": event.owner_id,
                    "registered_at": recorded.recorded_at,
                    "registered_by": recorded.actor,
                }
            )
        elif kind == "CustomerAssigned":
            transfers.append(
                _transfer(recorded, "customer", event.previous_owner_id, event.owner_id)
            )
            current = customers.get(recorded.aggregate_id)
            if current is not None:
                customers.put({**current, "owner_id": event.owner_id})
        elif kind == "PersonalDataErased":
            current = customers.get(recorded.aggregate_id)
            if current is not None:
                customers.put({**current, "name": ERASED})
        elif kind == "ActivityLogged":
            activity[(recorded.actor, week_of(recorded.recorded_at), event.kind)] += 1
            deal = deals.get(event.opportunity_id) if event.opportunity_id else None
            if deal is not None:
                deals.put({**deal, "last_activity_at": recorded.recorded_at})


class _MonitoringChanges:
    """Monitoring's changes pending in one transaction (see ``Projection.apply``)."""

    def __init__(self) -> None:
        self.deals = KeyedRows("monitoring_deals", "opportunity_id", DEAL_COLUMNS)
        self.customers = KeyedRows("monitoring_customers", "customer_id", CUSTOMER_COLUMNS)
        self.activity: Counter[tuple[str, str, str]] = Counter()
        self.transfers: list[Row] = []


def _deals_from_earlier_batches(events: Sequence[RecordedEvent]) -> list[str]:
    """The deals ``events`` touch (their own events, customer activities logged against
    them) that may have rows from earlier batches: all but those opened here first."""
    opened_here: dict[str, bool] = {}
    for recorded in events:
        kind = recorded.type_name
        if kind in _DEAL_EVENTS:
            opened_here.setdefault(recorded.aggregate_id, kind == "OpportunityOpened")
        elif kind == "ActivityLogged" and recorded.event.opportunity_id:
            opened_here.setdefault(recorded.event.opportunity_id, False)
    return [deal for deal, opened in opened_here.items() if not opened]


def _transfer(
    recorded: RecordedEvent, aggregate_type: str, from_owner: str | None, to_owner: str
) -> Row:
    return {
        "position": recorded.position,
        "aggregate_id": recorded.aggregate_id,
        "aggregate_type": aggregate_type,
        "from_owner": from_owner,
        "to_owner": to_owner,
        "actor": recorded.actor,
        "recorded_at": recorded.recorded_at,
        "reason": recorded.event.reason,
    }
