"""The sales funnel: every opportunity's current stage and value, and its stage history.

Tables:
- ``funnel_opportunities``: one row per opportunity (owner, region, product, source,
  amount, expected close, stage, status, when it entered its stage, outcome).
- ``funnel_stage_intervals``: one row per finished stay in a stage (entered, left,
  seconds, where it went, whether the deal was being nurtured), the history behind funnel
  health, conversion and velocity.
- ``funnel_stage_totals``: count and amount per owner, stage and funnel status.
- ``funnel_dimension_totals``: count and amount per region, product, source, close month,
  stage and funnel status (without owner, so small), for the filtered funnel.

A deal's *funnel status* is its status, except that an open deal disqualified into
nurturing (back to marketing) is ``nurturing`` until it is qualified again: it counts
in no sales-funnel stage, only in the separate nurturing figures. Entering or leaving
nurturing ends a stay like a change of stage.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.funnel import (
    HEALTH_HISTORY_MONTHS,
    LAST_OPEN_STAGE,
    STAGE_NAMES,
    STAGE_PROBABILITY,
    WON_STAGE,
    health_label,
)
from events import opportunity as opportunity_events
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    add_to_totals,
    as_decimal,
    create_table,
    in_clause,
    iso_timestamp,
    keys_from_earlier_batches,
    topics_of,
    write_rows,
)
from projections.store import ReadStore, Row, Transaction

DEAL_COLUMNS = (
    "opportunity_id",
    "customer_id",
    "owner_id",
    "title",
    "source",
    "product",
    "region",
    "amount",
    "expected_close",
    "stage",
    "status",
    "qualification",
    "opened_at",
    "stage_entered_at",
    "max_stage",
    "won_amount",
    "closed_on",
    "closed_at",
)
INTERVAL_COLUMNS = (
    "opportunity_id",
    "left_position",
    "stage",
    "entered_at",
    "left_at",
    "seconds",
    "outcome",
    "amount",
    "owner_id",
    "source",
    "product",
    "region",
    "expected_close",
    "nurturing",
)
DIMENSION_KEYS = ("region", "product", "source", "close_month", "stage", "status")
FUNNEL_EVENT_TYPES = (
    opportunity_events.OpportunityOpened,
    opportunity_events.OpportunityQualified,
    opportunity_events.OpportunityDisqualified,
    opportunity_events.StageAdvanced,
    opportunity_events.PrimaryOwnerChanged,
    opportunity_events.AmountRevised,
    opportunity_events.CloseDateRevised,
    opportunity_events.OpportunityWon,
    opportunity_events.OpportunityLost,
    opportunity_events.OpportunityReopened,
)
FUNNEL_TOPICS = topics_of(FUNNEL_EVENT_TYPES)
DEFAULT_HISTORY_MONTHS = HEALTH_HISTORY_MONTHS


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def evolve_deal(
    row: Row | None, recorded: RecordedEvent
) -> tuple[Row | None, tuple[Any, ...] | None]:
    """The deal's row after ``recorded``, and the stage interval the event closed (if any,
    its values in ``INTERVAL_COLUMNS`` order).

    Pure: used by the projection and by the as-of fold alike.
    """
    event = recorded.event
    kind = recorded.type_name
    at = recorded.recorded_at
    if kind == "OpportunityOpened":
        return {
            "opportunity_id": recorded.aggregate_id,
            "customer_id": event.customer_id,
            "owner_id": event.owner_id,
            "title": event.title,
            "source": event.source,
            "product": event.product,
            "region": event.region,
            "amount": event.amount,
            "expected_close": event.expected_close.isoformat(),
            "stage": 1,
            "status": "open",
            "qualification": "pending",
            "opened_at": at,
            "stage_entered_at": at,
            "max_stage": 1,
            "won_amount": None,
            "closed_on": None,
            "closed_at": None,
        }, None
    if row is None or kind not in _DEAL_CHANGES:
        return row, None
    new = dict(row)
    _DEAL_CHANGES[kind](new, event, at)
    interval = None
    was_open, is_open = row["status"] == "open", new["status"] == "open"
    # ``is_nurturing`` of each, inline: this runs for every deal event of a catch-up.
    was_nurtured = was_open and row["qualification"] == "nurturing"
    is_nurtured = is_open and new["qualification"] == "nurturing"
    if is_open and is_nurtured != was_nurtured:
        new["stage_entered_at"] = at
    left_stage = new["stage"] != row["stage"] or not is_open
    if was_open and (left_stage or is_nurtured != was_nurtured):
        if not is_open:
            outcome = new["status"]
        elif is_nurtured != was_nurtured:
            outcome = "nurturing" if is_nurtured else "qualified"
        else:
            outcome = f"stage {new['stage']}"
        interval = (  # in INTERVAL_COLUMNS order: appended as it is
            row["opportunity_id"],
            recorded.position,
            row["stage"],
            row["stage_entered_at"],
            at,
            _seconds_between(row["stage_entered_at"], at),
            outcome,
            row["amount"],
            row["owner_id"],
            row["source"],
            row["product"],
            row["region"],
            row["expected_close"],
            int(was_nurtured),
        )
    return new, interval


def is_nurturing(row: Row) -> bool:
    """An open deal sent back to marketing: outside the sales funnel until requalified."""
    return bool(row["status"] == "open" and row["qualification"] == "nurturing")


def funnel_status(row: Row) -> str:
    """``nurturing`` for a deal being nurtured, else its status (open, won, lost)."""
    return "nurturing" if is_nurturing(row) else str(row["status"])


def _enter_stage(row: Row, stage: int, at: str) -> None:
    row["stage"] = stage
    row["stage_entered_at"] = at
    row["max_stage"] = max(int(row["max_stage"]), stage)


def _qualified(row: Row, event: Any, at: str) -> None:
    row["qualification"] = "qualified"


def _disqualified(row: Row, event: Any, at: str) -> None:
    row["qualification"] = "nurturing"
    if int(row["stage"]) != 1:
        _enter_stage(row, 1, at)


def _stage_advanced(row: Row, event: Any, at: str) -> None:
    _enter_stage(row, event.to_stage, at)


def _owner_changed(row: Row, event: Any, at: str) -> None:
    row["owner_id"] = event.owner_id


def _amount_revised(row: Row, event: Any, at: str) -> None:
    row["amount"] = event.amount


def _close_date_revised(row: Row, event: Any, at: str) -> None:
    row["expected_close"] = event.expected_close.isoformat()


def _won(row: Row, event: Any, at: str) -> None:
    _enter_stage(row, WON_STAGE, at)
    row["status"] = "won"
    row["won_amount"] = event.amount
    row["closed_on"] = event.closed_on.isoformat()
    row["closed_at"] = at


def _lost(row: Row, event: Any, at: str) -> None:
    row["status"] = "lost"
    row["stage_entered_at"] = at
    row["closed_on"] = event.closed_on.isoformat()
    row["closed_at"] = at


def _reopened(row: Row, event: Any, at: str) -> None:
    row["status"] = "open"
    row["stage"] = event.stage
    row["stage_entered_at"] = at
    row["won_amount"] = None
    row["closed_on"] = None
    row["closed_at"] = None


_DEAL_CHANGES: dict[str, Callable[[Row, Any, str], None]] = {
    "OpportunityQualified": _qualified,
    "OpportunityDisqualified": _disqualified,
    "StageAdvanced": _stage_advanced,
    "PrimaryOwnerChanged": _owner_changed,
    "AmountRevised": _amount_revised,
    "CloseDateRevised": _close_date_revised,
    "OpportunityWon": _won,
    "OpportunityLost": _lost,
    "OpportunityReopened": _reopened,
}


class FunnelProjection(Projection):
    """Opportunities by stage, with the history of every stage they passed through."""

    name = "funnel"
    topics = FUNNEL_TOPICS
    rows_version = 2  # 2: totals rows without deals are deleted, not kept with zeros
    tables = (
        "funnel_opportunities",
        "funnel_stage_intervals",
        "funnel_stage_totals",
        "funnel_dimension_totals",
    )
    indexes = {
        "funnel_opportunities_status_stage": "funnel_opportunities (status, stage)",
        "funnel_opportunities_expected_close": "funnel_opportunities (status, expected_close)",
        "funnel_opportunities_closed_on": "funnel_opportunities (status, closed_on)",
        "funnel_stage_intervals_time": "funnel_stage_intervals (entered_at, left_at)",
    }
    owner_indexes = {
        "postgres": "funnel_opportunities (owner_id, status) INCLUDE (region, product, source, "
        "expected_close, closed_on, stage, qualification, amount, won_amount)",
        "sqlite": "funnel_opportunities (owner_id, status)",
    }
    """By owner: on PostgreSQL covering, so owners with other criteria read the index only."""

    def create_indexes(self, tx: Transaction) -> None:
        super().create_indexes(tx)
        definition = self.owner_indexes.get(tx.dialect, self.owner_indexes["sqlite"])
        tx.execute(f"CREATE INDEX IF NOT EXISTS funnel_opportunities_owner ON {definition}")

    def drop_indexes(self, tx: Transaction) -> None:
        super().drop_indexes(tx)
        tx.execute("DROP INDEX IF EXISTS funnel_opportunities_owner")

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "funnel_opportunities ("
            "opportunity_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, owner_id TEXT NOT NULL, "
            "title TEXT NOT NULL, source TEXT NOT NULL, product TEXT NOT NULL, "
            "region TEXT NOT NULL, amount NUMERIC NOT NULL, expected_close TEXT NOT NULL, "
            "stage INTEGER NOT NULL, status TEXT NOT NULL, qualification TEXT NOT NULL, "
            "opened_at TEXT NOT NULL, stage_entered_at TEXT NOT NULL, max_stage INTEGER NOT NULL, "
            "won_amount NUMERIC, closed_on TEXT, closed_at TEXT)",
        )
        create_table(
            tx,
            "funnel_stage_intervals ("
            "opportunity_id TEXT NOT NULL, left_position BIGINT NOT NULL, stage INTEGER NOT NULL, "
            "entered_at TEXT NOT NULL, left_at TEXT NOT NULL, seconds DOUBLE PRECISION NOT NULL, "
            "outcome TEXT NOT NULL, amount NUMERIC NOT NULL, owner_id TEXT NOT NULL, "
            "source TEXT NOT NULL, product TEXT NOT NULL, region TEXT NOT NULL, "
            "expected_close TEXT NOT NULL, nurturing INTEGER NOT NULL, "
            "PRIMARY KEY (opportunity_id, left_position))",
        )
        create_table(
            tx,
            "funnel_stage_totals ("
            "owner_id TEXT NOT NULL, stage INTEGER NOT NULL, status TEXT NOT NULL, "
            "count BIGINT NOT NULL, amount NUMERIC NOT NULL, "
            "PRIMARY KEY (owner_id, stage, status))",
        )
        create_table(
            tx,
            "funnel_dimension_totals ("
            "region TEXT NOT NULL, product TEXT NOT NULL, source TEXT NOT NULL, "
            "close_month TEXT NOT NULL, stage INTEGER NOT NULL, status TEXT NOT NULL, "
            "count BIGINT NOT NULL, amount NUMERIC NOT NULL, "
            f"PRIMARY KEY ({', '.join(DIMENSION_KEYS)}))",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        pending = self.begin()
        self.apply(tx, pending, events)
        self.flush(tx, pending)

    def begin(self) -> _FunnelChanges:
        return _FunnelChanges()

    def apply(self, tx: Transaction, pending: Any, events: Sequence[RecordedEvent]) -> None:
        relevant = [e for e in events if e.type_name in _FUNNEL_TYPE_NAMES]
        if not relevant:
            return
        deals, intervals, totals = pending.deals, pending.intervals, pending.totals
        deals.load(tx, keys_from_earlier_batches(relevant, "OpportunityOpened"))
        current = deals.rows.get  # not ``deals.get``: a call less per event, measurable here
        first_seen, last_seen = totals.before, totals.after
        for recorded in relevant:
            before = current(recorded.aggregate_id)
            row, interval = evolve_deal(before, recorded)
            if row is not None and row is not before:
                deals.put(row)
                deal_id = recorded.aggregate_id
                if deal_id not in first_seen:  # the totals' before and after (inline: per event)
                    first_seen[deal_id] = before
                last_seen[deal_id] = row
            if interval is not None:
                intervals.append(interval)
        # Intervals are only ever appended: written with their batch, so that the rows
        # pending in a long transaction are only the deals' (bounded by the deals).
        write_rows(tx, "funnel_stage_intervals", INTERVAL_COLUMNS, intervals)
        intervals.clear()

    def flush(self, tx: Transaction, pending: Any) -> None:
        pending.deals.flush(tx)
        pending.totals.write(tx)


class _FunnelChanges:
    """The funnel's changes pending in one transaction: each changed deal's row (written
    once, however many batches changed it), the stage intervals its batch closed, the
    totals."""

    def __init__(self) -> None:
        self.deals = KeyedRows("funnel_opportunities", "opportunity_id", DEAL_COLUMNS)
        self.intervals: list[tuple[Any, ...]] = []
        self.totals = _Totals()


class _Totals:
    """A batch's changes to the two totals tables, added to their rows in one statement each.

    Each deal is counted out in its state before the batch and in at its state after it;
    the states it passed through in between change nothing, so they write nothing. Rows
    whose count drops to zero are deleted (``add_to_totals``), so the tables hold the
    same rows however the events were batched. (Writing the in-between states as zero
    changes, to keep the rows event-by-event processing used to leave, was three
    quarters of the totals' rows and about a tenth of the funnel's catch-up time.)
    """

    def __init__(self) -> None:
        self.by_owner: dict[tuple[Any, ...], list[Any]] = {}
        self.by_dimension: dict[tuple[Any, ...], list[Any]] = {}
        self.before: dict[str, Row | None] = {}
        """Each deal changed, as it was before its first change here."""
        self.after: dict[str, Row] = {}
        """Each deal changed, as it is after its last change here."""

    def count(self, row: Row | None, sign: int) -> None:
        """Add (or with ``sign`` −1, remove) a deal."""
        if row is None:
            return
        status = funnel_status(row)
        value = sign * as_decimal(row["won_amount"] if status == "won" else row["amount"])
        owner_key, dimension_key = _total_keys(row, status)
        _add(self.by_owner, owner_key, sign, value)
        if dimension_key is not None:
            _add(self.by_dimension, dimension_key, sign, value)

    def write(self, tx: Transaction) -> None:
        for deal_id, before in self.before.items():
            self.count(before, -1)
            self.count(self.after[deal_id], +1)
        for table, keys, totals in (
            ("funnel_stage_totals", ("owner_id", "stage", "status"), self.by_owner),
            ("funnel_dimension_totals", DIMENSION_KEYS, self.by_dimension),
        ):
            changes = [
                [*key, n, str(amount)] for key, (n, amount) in sorted(totals.items()) if n or amount
            ]
            add_to_totals(tx, table, keys, changes)


def _total_keys(row: Row, status: str) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
    """Where ``row`` counts: its owner totals key, and its dimension totals key (None for
    a lost deal, which has no place in the filtered funnel)."""
    stage = int(row["stage"])
    owner_key = (row["owner_id"], stage, status)
    if status == "lost":
        return owner_key, None
    month = str(row["closed_on"] if status == "won" else row["expected_close"])[:7]
    return owner_key, (row["region"], row["product"], row["source"], month, stage, status)


def _add(
    totals: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], n: int, amount: Decimal
) -> None:
    entry = totals.setdefault(key, [0, Decimal(0)])
    entry[0] += n
    entry[1] += amount


_FUNNEL_TYPE_NAMES = frozenset(cls.__name__ for cls in FUNNEL_EVENT_TYPES)


# Queries.


@dataclass(frozen=True)
class FunnelFilter:
    """Which deals to count: each given criterion must match (``owner_ids``: any of them)."""

    owner_ids: Collection[str] | None = None
    region: str | None = None
    product: str | None = None
    source: str | None = None
    close_from: date | None = None
    close_to: date | None = None

    def sql(self, close_column: str = "expected_close") -> tuple[str, list[Any]]:
        """SQL conditions (prefixed with AND) and their parameters."""
        conditions, params = self._dimension_conditions(include_owners=True)
        if self.close_from is not None:
            conditions.append(f"{close_column} >= %s")
            params.append(self.close_from.isoformat())
        if self.close_to is not None:
            conditions.append(f"{close_column} <= %s")
            params.append(self.close_to.isoformat())
        return "".join(f" AND {c}" for c in conditions), params

    def month_sql(self) -> tuple[str, list[Any]]:
        """Conditions on ``funnel_dimension_totals`` (see ``in_whole_months``)."""
        conditions, params = self._dimension_conditions(include_owners=False)
        if self.close_from is not None:
            conditions.append("close_month >= %s")
            params.append(self.close_from.isoformat()[:7])
        if self.close_to is not None:
            conditions.append("close_month <= %s")
            params.append(self.close_to.isoformat()[:7])
        return "".join(f" AND {c}" for c in conditions), params

    def in_whole_months(self) -> bool:
        """True if the close period starts on a month's first day and ends on a last day."""
        starts = self.close_from is None or self.close_from.day == 1
        ends = self.close_to is None or (self.close_to + timedelta(days=1)).day == 1
        return starts and ends

    def _dimension_conditions(self, *, include_owners: bool) -> tuple[list[str], list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        if include_owners and self.owner_ids is not None:
            owners = sorted(self.owner_ids)
            conditions.append(f"owner_id {in_clause(owners)}")
            params.extend(owners)
        for column in ("region", "product", "source"):
            value = getattr(self, column)
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        return conditions, params

    def matches(self, row: Row, close_column: str = "expected_close") -> bool:
        if self.owner_ids is not None and row["owner_id"] not in self.owner_ids:
            return False
        for column in ("region", "product", "source"):
            value = getattr(self, column)
            if value is not None and row[column] != value:
                return False
        close = row[close_column]
        if self.close_from is not None and (close is None or close < self.close_from.isoformat()):
            return False
        return not (
            self.close_to is not None and (close is None or close > self.close_to.isoformat())
        )


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


def _funnel_from_totals(totals: StageTotals, as_of: datetime | None = None) -> Funnel:
    stages = []
    for stage in range(1, WON_STAGE + 1):
        status = "won" if stage == WON_STAGE else "open"
        count, amount = totals.get((stage, status), (0, Decimal(0)))
        probability = STAGE_PROBABILITY[stage]
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


def _add_total(totals: StageTotals, stage: int, status: str, n: int, amount: Decimal) -> None:
    count, total = totals.get((stage, status), (0, Decimal(0)))
    totals[(stage, status)] = (count + n, total + amount)


def query_funnel(database: ReadStore, selection: FunnelFilter = FunnelFilter()) -> Funnel:
    """The live funnel, from the projection's rows.

    Filtered by owners only (or not at all), it sums the per owner/stage totals. Filtered
    by region, product, source and a close period of whole months (year, quarter, month),
    it sums the per-dimension totals. Otherwise (owners with other criteria, a week or a
    day) it reads the matching deals through an index.
    """
    if selection == FunnelFilter(owner_ids=selection.owner_ids):
        return _funnel_from_totals_table(database, "funnel_stage_totals", selection.sql())
    if selection.owner_ids is None and selection.in_whole_months():
        return _funnel_from_totals_table(database, "funnel_dimension_totals", selection.month_sql())
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
        _add_total(totals, int(row["stage"]), status, int(row["n"]), as_decimal(row["amount"]))
    _add_total(totals, WON_STAGE, "won", int(won[0]["n"]), as_decimal(won[0]["amount"]))
    return _funnel_from_totals(totals)


def _funnel_from_totals_table(
    database: ReadStore, table: str, where: tuple[str, list[Any]]
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
        _add_total(totals, stage, row["status"], int(row["n"]), as_decimal(row["amount"]))
    return _funnel_from_totals(totals)


def fold_deals_as_of(ledger: Any, moment: datetime, batch_size: int = 5000) -> dict[str, Row]:
    """Every opportunity's funnel row as it was at ``moment``, folded from the events alone.

    Reads only the funnel's event types; an opportunity's events after its first
    event later than ``moment`` are ignored, as ``SalesLedger.load_as_of`` does.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    deals: dict[str, Row] = {}
    cut: set[str] = set()
    start: int | None = None
    while True:
        notifications = ledger.recorder.select_notifications(
            start, batch_size, topics=FUNNEL_TOPICS, inclusive_of_start=False
        )
        if not notifications:
            return deals
        for notification in notifications:
            key = str(notification.originator_id)
            if key in cut:
                continue
            event = ledger.mapper.to_domain_event(notification)
            if event.timestamp > moment:
                cut.add(key)
                continue
            row, _ = evolve_deal(deals.get(key), RecordedEvent.of(notification.id, event))
            if row is not None:
                deals[key] = row
        start = notifications[-1].id


def funnel_from_deals(
    deals: Iterable[Row], selection: FunnelFilter = FunnelFilter(), as_of: datetime | None = None
) -> Funnel:
    """The funnel over in-memory deal rows (for as-of queries)."""
    totals: StageTotals = {}
    for row in deals:
        status = funnel_status(row)
        if status == "won" and selection.matches(row, close_column="closed_on"):
            _add_total(totals, WON_STAGE, status, 1, as_decimal(row["won_amount"]))
        elif status in ("open", "nurturing") and selection.matches(row):
            _add_total(totals, int(row["stage"]), status, 1, as_decimal(row["amount"]))
    return _funnel_from_totals(totals, as_of)


def query_funnel_as_of(
    ledger: Any, moment: datetime, selection: FunnelFilter = FunnelFilter()
) -> Funnel:
    """The funnel as it was at ``moment``, from the events alone."""
    return funnel_from_deals(fold_deals_as_of(ledger, moment).values(), selection, moment)


class FunnelHealthStage(BaseModel):
    """A stage's current figures against what history says to expect there."""

    stage: int = Field(examples=[2])
    count: int = Field(examples=[9])
    expected_count: Decimal = Field(examples=["10.5"])
    count_ratio: Decimal | None = Field(examples=["0.86"])
    amount: Decimal = Field(examples=["300000"])
    expected_amount: Decimal = Field(examples=["350000"])
    amount_ratio: Decimal | None = Field(examples=["0.86"])
    label: str = Field(
        description="excellent (>100 %), good (70–100 %), warning (<70 %), or no history",
        examples=["good"],
    )


class FunnelHealth(BaseModel):
    """Funnel health: live counts ÷ the average count at the same stage at past month-ends."""

    history_moments: list[datetime]
    stages: list[FunnelHealthStage]


def past_month_ends(now: datetime, months: int) -> list[datetime]:
    """The last ``months`` month-ends (midnight starting each month) before ``now``."""
    moments = []
    year, month = now.year, now.month
    for _ in range(months):
        moments.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return [m for m in moments if m < now] or [now]


def query_funnel_health(
    database: ReadStore,
    selection: FunnelFilter = FunnelFilter(),
    now: datetime | None = None,
    history_months: int = DEFAULT_HISTORY_MONTHS,
) -> FunnelHealth:
    """Per open stage: live count and amount ÷ their average at the past month-ends."""
    now = now or datetime.now(UTC)
    moments = past_month_ends(now, history_months)
    current = query_funnel(database, selection)
    conditions, params = selection.sql()
    sums: dict[int, list[Decimal]] = {s: [Decimal(0), Decimal(0)] for s in STAGE_NAMES}
    with database.transaction() as tx:
        for moment in moments:
            at = iso_timestamp(moment)
            for sql, extra in (
                (
                    "SELECT stage, COUNT(*) AS n, SUM(amount) AS amount FROM funnel_stage_intervals"
                    " WHERE nurturing = 0 AND entered_at <= %s AND left_at > %s",
                    [at, at],
                ),
                (
                    "SELECT stage, COUNT(*) AS n, SUM(amount) AS amount FROM funnel_opportunities"
                    " WHERE status = 'open' AND qualification <> 'nurturing'"
                    " AND stage_entered_at <= %s",
                    [at],
                ),
            ):
                for row in tx.execute(f"{sql}{conditions} GROUP BY stage", [*extra, *params]):
                    totals = sums[int(row["stage"])]
                    totals[0] += int(row["n"])
                    totals[1] += as_decimal(row["amount"])
    stages = []
    for live in current.stages[:LAST_OPEN_STAGE]:
        expected_count = sums[live.stage][0] / len(moments)
        expected_amount = sums[live.stage][1] / len(moments)
        count_ratio = _ratio(Decimal(live.count), expected_count)
        stages.append(
            FunnelHealthStage(
                stage=live.stage,
                count=live.count,
                expected_count=expected_count.quantize(Decimal("0.01")),
                count_ratio=count_ratio,
                amount=live.amount,
                expected_amount=expected_amount.quantize(Decimal("0.01")),
                amount_ratio=_ratio(live.amount, expected_amount),
                label=health_label(count_ratio),
            )
        )
    return FunnelHealth(history_moments=moments, stages=stages)


def _ratio(value: Decimal, expected: Decimal) -> Decimal | None:
    if expected == 0:
        return None
    return (value / expected).quantize(Decimal("0.0001"))
