"""The list projection: its tables and indexes, and how a batch of events changes their
rows (read once, changed in memory, each written once at the end of the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from events import customer as customer_events
from events import forecast as forecast_events
from events import opportunity as opportunity_events
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    create_table,
    topics_of,
    write_rows,
)
from projections.listings.rows import (
    CUSTOMER_COLUMNS,
    DEAL_CHANGES,
    ERASED_CUSTOMER_COLUMNS,
    FORECAST_COLUMNS,
    OPPORTUNITY_COLUMNS,
    no_change,
    opened_deal,
    registered_customer,
    text_or_none,
)
from projections.listings.search import name_grams
from projections.store import Transaction

_OPPORTUNITY_TYPES = (
    opportunity_events.OpportunityOpened,
    opportunity_events.OpportunityQualified,
    opportunity_events.OpportunityDisqualified,
    opportunity_events.OpportunityEvaluated,
    opportunity_events.StageAdvanced,
    opportunity_events.PrimaryOwnerChanged,
    opportunity_events.TeamMemberAdded,
    opportunity_events.TeamMemberRemoved,
    opportunity_events.BidDetailsRecorded,
    opportunity_events.AmountRevised,
    opportunity_events.CloseDateRevised,
    opportunity_events.OpportunityActivityLogged,
    opportunity_events.OpportunityWon,
    opportunity_events.OpportunityLost,
    opportunity_events.OpportunityReopened,
)
_CUSTOMER_TYPES = (
    customer_events.CustomerRegistered,
    customer_events.ProfileSupplemented,
    customer_events.CustomerClassified,
    customer_events.CustomerAssigned,
    customer_events.ActivityLogged,
    customer_events.PersonalDataErased,
)
_FORECAST_TYPES = (
    forecast_events.ForecastOpened,
    forecast_events.ForecastSubmitted,
    forecast_events.ForecastRevised,
)
_OPPORTUNITY_EVENTS = frozenset(cls.__name__ for cls in _OPPORTUNITY_TYPES)
_CUSTOMER_EVENTS = frozenset(cls.__name__ for cls in _CUSTOMER_TYPES)
_FORECAST_EVENTS = frozenset(cls.__name__ for cls in _FORECAST_TYPES)
_CREATED = frozenset({"OpportunityOpened", "CustomerRegistered", "ForecastOpened"})


class ListingProjection(Projection):
    """Opportunities, customers and forecasts as rows to filter, sort, search and page."""

    name = "lists"
    rows_version = 2
    topics = topics_of((*_OPPORTUNITY_TYPES, *_CUSTOMER_TYPES, *_FORECAST_TYPES))
    tables = (
        "list_opportunities",
        "list_opportunity_team",
        "list_customers",
        "list_customer_grams",
        "list_forecasts",
    )
    indexes = {
        "list_opportunities_owner": "list_opportunities (owner_id, expected_close, opportunity_id)",
        "list_opportunities_customer": "list_opportunities (customer_id)",
        "list_opportunities_close": "list_opportunities (expected_close, opportunity_id)",
        "list_opportunities_amount": "list_opportunities (amount, opportunity_id)",
        "list_opportunities_opened": "list_opportunities (opened_at, opportunity_id)",
        "list_opportunities_updated": "list_opportunities (updated_at, opportunity_id)",
        "list_opportunities_stage": "list_opportunities (status, stage)",
        "list_opportunities_idle": "list_opportunities (status, idle_since)",
        "list_opportunities_region": "list_opportunities (region)",
        "list_opportunities_product": "list_opportunities (product)",
        "list_opportunity_team_person": "list_opportunity_team (person_id, opportunity_id)",
        "list_customers_name": "list_customers (name_key, customer_id)",
        "list_customers_owner": "list_customers (owner_id, name_key)",
        "list_customers_tax": "list_customers (tax_key)",
        "list_customers_email": "list_customers (email_key)",
        "list_customers_phone": "list_customers (phone_key)",
        "list_customers_phone_rev": "list_customers (phone_rev)",
        "list_customers_registered": "list_customers (registered_at, customer_id)",
        "list_customers_class": "list_customers (classification)",
        "list_customers_region": "list_customers (region)",
        "list_forecasts_person": "list_forecasts (person_id, period)",
        "list_forecasts_period": "list_forecasts (period, person_id)",
    }

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "list_opportunities ("
            "opportunity_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, owner_id TEXT NOT NULL, "
            "title TEXT NOT NULL, source TEXT NOT NULL, product TEXT NOT NULL, "
            "region TEXT NOT NULL, amount NUMERIC NOT NULL, amount_text TEXT NOT NULL, "
            "expected_close TEXT NOT NULL, stage INTEGER NOT NULL, status TEXT NOT NULL, "
            "qualification TEXT NOT NULL, high_value INTEGER NOT NULL, evaluation_score INTEGER, "
            "opened_at TEXT NOT NULL, idle_since TEXT NOT NULL, updated_at TEXT NOT NULL, "
            "won_amount_text TEXT, closed_on TEXT, version INTEGER NOT NULL)",
        )
        create_table(
            tx,
            "list_opportunity_team (opportunity_id TEXT NOT NULL, person_id TEXT NOT NULL, "
            "PRIMARY KEY (opportunity_id, person_id))",
        )
        create_table(
            tx,
            "list_customers ("
            "customer_id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL, "
            "source TEXT NOT NULL, tax_id TEXT, tax_key TEXT, phone TEXT, phone_key TEXT, "
            "phone_rev TEXT, email TEXT, email_key TEXT, owner_id TEXT, classification TEXT, "
            "region TEXT, registered_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
            "version INTEGER NOT NULL)",
        )
        create_table(
            tx,
            "list_customer_grams (gram TEXT NOT NULL, customer_id TEXT NOT NULL, "
            "PRIMARY KEY (gram, customer_id))",
        )
        create_table(
            tx,
            "list_forecasts ("
            "forecast_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, period TEXT NOT NULL, "
            "status TEXT NOT NULL, total NUMERIC NOT NULL, total_text TEXT NOT NULL, "
            "submitted_at TEXT, updated_at TEXT NOT NULL, version INTEGER NOT NULL)",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        pending = self.begin()
        self.apply(tx, pending, events)
        self.flush(tx, pending)

    def begin(self) -> _ListingChanges:
        return _ListingChanges()

    def apply(self, tx: Transaction, pending: Any, events: Sequence[RecordedEvent]) -> None:
        changes: _ListingChanges = pending
        changes.load(tx, events)
        for recorded in events:
            kind = recorded.type_name
            if kind in _OPPORTUNITY_EVENTS:
                changes.apply_to_opportunity(recorded)
            elif kind in _CUSTOMER_EVENTS:
                changes.apply_to_customer(recorded)
            elif kind in _FORECAST_EVENTS:
                changes.apply_to_forecast(recorded)

    def flush(self, tx: Transaction, pending: Any) -> None:
        pending.write(tx)


class _ListingChanges:
    """The rows one transaction changes, each written once at the end."""

    def __init__(self) -> None:
        self.deals = KeyedRows("list_opportunities", "opportunity_id", OPPORTUNITY_COLUMNS)
        self.customers = KeyedRows("list_customers", "customer_id", CUSTOMER_COLUMNS)
        self.forecasts = KeyedRows("list_forecasts", "forecast_id", FORECAST_COLUMNS)
        self.team: dict[tuple[str, str], bool] = {}
        self.grams: list[tuple[str, str]] = []
        self.erased: list[str] = []

    def load(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        """Read the rows of earlier batches that ``events`` change."""
        wanted: dict[str, set[str]] = {"deal": set(), "customer": set(), "forecast": set()}
        created: set[str] = set()
        for recorded in events:
            kind, key = recorded.type_name, recorded.aggregate_id
            if kind in _CREATED:
                created.add(key)
                continue
            if kind == "ActivityLogged" and recorded.event.opportunity_id:
                wanted["deal"].add(str(recorded.event.opportunity_id))
            if key in created:
                continue
            if kind in _OPPORTUNITY_EVENTS:
                wanted["deal"].add(key)
            elif kind in _CUSTOMER_EVENTS:
                wanted["customer"].add(key)
            elif kind in _FORECAST_EVENTS:
                wanted["forecast"].add(key)
        self.deals.load(tx, sorted(wanted["deal"] - created))
        self.customers.load(tx, sorted(wanted["customer"]))
        self.forecasts.load(tx, sorted(wanted["forecast"]))

    def apply_to_opportunity(self, recorded: RecordedEvent) -> None:
        event, kind, at = recorded.event, recorded.type_name, recorded.recorded_at
        if kind == "OpportunityOpened":
            self.deals.put(opened_deal(recorded))
            return
        current = self.deals.get(recorded.aggregate_id)
        if current is None:
            return
        row = dict(current)
        row.update(version=event.originator_version, updated_at=at)
        DEAL_CHANGES.get(kind, no_change)(row, event, at)
        if kind == "TeamMemberAdded":
            self.team[(recorded.aggregate_id, event.person_id)] = True
        elif kind == "TeamMemberRemoved":
            self.team[(recorded.aggregate_id, event.person_id)] = False
        self.deals.put(row)

    def apply_to_customer(self, recorded: RecordedEvent) -> None:
        event, kind, at = recorded.event, recorded.type_name, recorded.recorded_at
        if kind == "CustomerRegistered":
            row = registered_customer(recorded)
            self.customers.put(row)
            self.grams.extend((gram, row["customer_id"]) for gram in name_grams(row["name_key"]))
            return
        if kind == "ActivityLogged" and event.opportunity_id:
            deal = self.deals.get(str(event.opportunity_id))
            if deal is not None:
                self.deals.put({**deal, "idle_since": max(deal["idle_since"], at)})
        current = self.customers.get(recorded.aggregate_id)
        if current is None:
            return
        row = {**current, "version": event.originator_version, "updated_at": at}
        if kind == "CustomerClassified":
            row["classification"] = event.classification
        elif kind == "CustomerAssigned":
            row["owner_id"] = event.owner_id
        elif kind == "ProfileSupplemented" and "region" in event.changes:
            row["region"] = text_or_none(event.changes["region"])
        elif kind == "PersonalDataErased":
            row.update(ERASED_CUSTOMER_COLUMNS)
            self.erased.append(recorded.aggregate_id)
        self.customers.put(row)

    def apply_to_forecast(self, recorded: RecordedEvent) -> None:
        event, kind, at = recorded.event, recorded.type_name, recorded.recorded_at
        if kind == "ForecastOpened":
            self.forecasts.put(
                {
                    "forecast_id": recorded.aggregate_id,
                    "person_id": event.person_id,
                    "period": event.period,
                    "status": "open",
                    "total": "0",
                    "total_text": "0",
                    "submitted_at": None,
                    "updated_at": at,
                    "version": event.originator_version,
                }
            )
            return
        current = self.forecasts.get(recorded.aggregate_id)
        if current is None:
            return
        row = {**current, "version": event.originator_version, "updated_at": at}
        if kind == "ForecastSubmitted":
            row.update(status="submitted", total=str(event.total), total_text=str(event.total))
            row["submitted_at"] = at
        else:
            total = str(event.adjusted_total)
            row.update(status="revised", total=total, total_text=total)
        self.forecasts.put(row)

    def write(self, tx: Transaction) -> None:
        self.deals.flush(tx)
        self.customers.flush(tx)
        self.forecasts.flush(tx)
        added = sorted(key for key, present in self.team.items() if present)
        removed = sorted(key for key, present in self.team.items() if not present)
        write_rows(
            tx,
            "list_opportunity_team",
            ("opportunity_id", "person_id"),
            added,
            " ON CONFLICT (opportunity_id, person_id) DO NOTHING",
        )
        if removed:
            tx.executemany(
                "DELETE FROM list_opportunity_team WHERE opportunity_id = %s AND person_id = %s",
                removed,
            )
        write_rows(
            tx,
            "list_customer_grams",
            ("gram", "customer_id"),
            sorted(set(self.grams)),
            " ON CONFLICT (gram, customer_id) DO NOTHING",
        )
        if self.erased:
            tx.executemany(
                "DELETE FROM list_customer_grams WHERE customer_id = %s",
                [(customer_id,) for customer_id in sorted(set(self.erased))],
            )
        self.team.clear()
        self.grams.clear()
        self.erased.clear()
