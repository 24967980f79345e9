"""Process monitoring: stale and slipped deals, activity per person and week, customers
without an owner, and every ownership transfer of customers and deals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.funnel import FIRST_STAGE, WON_STAGE
from events import customer as customer_events
from events import opportunity as opportunity_events
from events.personal import ERASED
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    add_counts,
    as_decimal,
    create_table,
    in_clause,
    insert_rows,
    iso_timestamp,
    topics_of,
    week_of,
)
from projections.store import ReadStore, Row, Transaction

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


# Queries.


class WatchedDeal(BaseModel):
    """An open deal that needs attention."""

    opportunity_id: str
    customer_id: str
    owner_id: str = Field(examples=["alice"])
    title: str = Field(examples=["Line 3 automation"])
    stage: int = Field(examples=[4])
    expected_close: date = Field(examples=["2026-03-31"])
    last_stage_change_at: str
    last_activity_at: str | None
    amount: Decimal = Field(examples=["275000"])
    customer_name: str | None = Field(examples=["Bright Machinery"])
    owner_name: str | None = Field(default=None, examples=["Alice Chen"])
    days_idle: int = Field(description="days since the last activity or stage change")
    days_overdue: int = Field(description="days since the expected close date (0 if not yet)")


class WatchedDealPage(BaseModel):
    """A page of deals needing attention, most idle first."""

    items: list[WatchedDeal]
    total: int
    next_offset: int | None


def _owner_condition(
    owner_ids: Collection[str] | None, column: str = "d.owner_id"
) -> tuple[str, list[Any]]:
    if owner_ids is None:
        return "", []
    owners = sorted(owner_ids)
    return f" AND {column} {in_clause(owners)}", owners


def _deal_page(
    database: ReadStore,
    condition: str,
    params: list[Any],
    now: datetime,
    limit: int,
    offset: int,
) -> WatchedDealPage:
    idle_since = (
        "CASE WHEN d.last_activity_at IS NOT NULL AND d.last_activity_at > "
        "d.last_stage_change_at THEN d.last_activity_at ELSE d.last_stage_change_at END"
    )
    columns = ", ".join(f"d.{c}" for c in DEAL_COLUMNS)
    with database.transaction() as tx:
        total = tx.execute(
            f"SELECT COUNT(*) AS n FROM monitoring_deals d WHERE d.status = 'open'{condition}",
            params,
        )[0]["n"]
        rows = tx.execute(
            f"SELECT {columns}, c.name AS customer_name FROM monitoring_deals d "
            "LEFT JOIN monitoring_customers c ON c.customer_id = d.customer_id "
            f"WHERE d.status = 'open'{condition} ORDER BY {idle_since}, d.opportunity_id "
            "LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
    items = []
    for row in rows:
        idle_since_at = max(row["last_stage_change_at"], row["last_activity_at"] or "")
        overdue = (now.date() - date.fromisoformat(row["expected_close"])).days
        items.append(
            WatchedDeal(
                **{k: row[k] for k in DEAL_COLUMNS if k not in ("status", "amount")},
                amount=as_decimal(row["amount"]),
                customer_name=row["customer_name"],
                days_idle=(now - datetime.fromisoformat(idle_since_at)).days,
                days_overdue=max(0, overdue),
            )
        )
    return WatchedDealPage(
        items=items,
        total=int(total),
        next_offset=offset + limit if offset + limit < int(total) else None,
    )


def query_stale_deals(
    database: ReadStore,
    *,
    days: int,
    now: datetime | None = None,
    owner_ids: Collection[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> WatchedDealPage:
    """Open deals with neither activity nor a stage change for ``days`` days."""
    now = now or datetime.now(UTC)
    cutoff = iso_timestamp(now - timedelta(days=days))
    owners, owner_params = _owner_condition(owner_ids)
    condition = (
        " AND d.last_stage_change_at < %s "
        "AND (d.last_activity_at IS NULL OR d.last_activity_at < %s)" + owners
    )
    return _deal_page(database, condition, [cutoff, cutoff, *owner_params], now, limit, offset)


def query_slipped_deals(
    database: ReadStore,
    *,
    now: datetime | None = None,
    owner_ids: Collection[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> WatchedDealPage:
    """Open deals whose expected close date has passed (by ``now``'s date)."""
    now = now or datetime.now(UTC)
    today = now.date()
    owners, owner_params = _owner_condition(owner_ids)
    return _deal_page(
        database,
        f" AND d.expected_close < %s{owners}",
        [today.isoformat(), *owner_params],
        now,
        limit,
        offset,
    )


class ActivityCount(BaseModel):
    """How many activities a person logged in an ISO week, by kind."""

    person_id: str = Field(examples=["alice"])
    week: str = Field(examples=["2026-W14"])
    total: int = Field(examples=[9])
    by_kind: dict[str, int] = Field(examples=[{"visit": 4, "call": 5}])


def query_activity_counts(
    database: ReadStore,
    *,
    person_ids: Collection[str] | None = None,
    from_week: str | None = None,
    to_week: str | None = None,
) -> list[ActivityCount]:
    """Activities per person and ISO week (``2026-W14``), optionally within a week range."""
    condition, params = _owner_condition(person_ids, "person_id")
    if from_week is not None:
        condition += " AND week >= %s"
        params.append(from_week)
    if to_week is not None:
        condition += " AND week <= %s"
        params.append(to_week)
    with database.transaction() as tx:
        rows = tx.execute(
            "SELECT person_id, week, kind, count FROM monitoring_activity_counts "
            f"WHERE 1 = 1{condition} ORDER BY person_id, week, kind",
            params,
        )
    counts: dict[tuple[str, str], ActivityCount] = {}
    for row in rows:
        key = (row["person_id"], row["week"])
        entry = counts.setdefault(
            key, ActivityCount(person_id=key[0], week=key[1], total=0, by_kind={})
        )
        entry.by_kind[row["kind"]] = int(row["count"])
        entry.total += int(row["count"])
    return list(counts.values())


class UnownedCustomer(BaseModel):
    """A customer nobody is responsible for."""

    customer_id: str
    name: str = Field(examples=["Bright Machinery"])
    registered_at: str
    registered_by: str = Field(examples=["marketing"])


class UnownedCustomerPage(BaseModel):
    items: list[UnownedCustomer]
    total: int
    next_offset: int | None


def query_unowned_customers(
    database: ReadStore, *, limit: int = 100, offset: int = 0
) -> UnownedCustomerPage:
    """Customers without an account manager, oldest first."""
    with database.transaction() as tx:
        total = int(
            tx.execute("SELECT COUNT(*) AS n FROM monitoring_customers WHERE owner_id IS NULL")[0][
                "n"
            ]
        )
        rows = tx.execute(
            "SELECT customer_id, name, registered_at, registered_by FROM monitoring_customers "
            "WHERE owner_id IS NULL ORDER BY registered_at, customer_id LIMIT %s OFFSET %s",
            [limit, offset],
        )
    return UnownedCustomerPage(
        items=[UnownedCustomer(**row) for row in rows],
        total=total,
        next_offset=offset + limit if offset + limit < total else None,
    )


class OwnershipTransfer(BaseModel):
    """A customer or deal passed from one owner to another."""

    position: int
    aggregate_id: str
    aggregate_type: str = Field(examples=["customer"])
    from_owner: str | None = Field(examples=["alice"])
    to_owner: str = Field(examples=["bob"])
    actor: str = Field(examples=["carol"])
    recorded_at: str
    reason: str = Field(examples=["alice moved to the west region"])


class OwnershipTransferPage(BaseModel):
    items: list[OwnershipTransfer]
    next_after: int | None


def query_ownership_transfers(
    database: ReadStore,
    *,
    aggregate_id: str | None = None,
    person_id: str | None = None,
    people: Collection[str] | None = None,
    after: int = 0,
    limit: int = 100,
) -> OwnershipTransferPage:
    """Transfers in order; ``person_id`` matches the old owner, the new owner or the actor;
    ``people`` (if given) keeps those from or to one of them."""
    conditions: list[str] = ["position > %s"]
    params: list[Any] = [after]
    if aggregate_id is not None:
        conditions.append("aggregate_id = %s")
        params.append(aggregate_id)
    if person_id is not None:
        conditions.append("(from_owner = %s OR to_owner = %s OR actor = %s)")
        params.extend([person_id] * 3)
    if people is not None:
        names = sorted(people)
        conditions.append(f"(from_owner {in_clause(names)} OR to_owner {in_clause(names)})")
        params.extend([*names, *names])
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM monitoring_ownership_transfers "
            f"WHERE {' AND '.join(conditions)} ORDER BY position LIMIT %s",
            [*params, limit + 1],
        )
    items = [OwnershipTransfer(**row) for row in rows[:limit]]
    return OwnershipTransferPage(
        items=items, next_after=items[-1].position if len(rows) > limit else None
    )
