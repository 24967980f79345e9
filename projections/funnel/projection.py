"""The funnel projection: deal rows, stage intervals and the two totals tables, kept
current batch by batch.

Tables:
- ``funnel_opportunities``: one row per opportunity (owner, region, product, source,
  amount, expected close, stage, status, when it entered its stage, outcome, since when
  its state holds for the as-of funnel).
- ``funnel_stage_intervals``: one row per finished stay in a stage (entered, left,
  seconds, where it went, whether the deal was being nurtured), the history behind funnel
  health, conversion and velocity.
- ``funnel_stage_totals``: count and amount per owner, stage and funnel status.
- ``funnel_dimension_totals``: count and amount per region, product, source, close month,
  stage and funnel status (without owner, so small), for the filtered funnel.
- ``funnel_deal_versions``: each earlier state of a deal with the interval of event time
  it held over, for the funnel as of a past moment (``versions.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    add_to_totals,
    as_decimal,
    create_table,
    keys_from_earlier_batches,
    write_rows,
)
from projections.funnel.fold import (
    DEAL_COLUMNS,
    FUNNEL_EVENT_TYPES,
    FUNNEL_TOPICS,
    INTERVAL_COLUMNS,
    evolve_deal,
    funnel_status,
)
from projections.funnel.versions import (
    CURRENT_VERSION_COLUMNS,
    DealVersions,
    create_version_table,
)
from projections.store import Row, Transaction

DIMENSION_KEYS = ("region", "product", "source", "close_month", "stage", "status")


class FunnelProjection(Projection):
    """Opportunities by stage, with the history of every stage they passed through."""

    name = "funnel"
    topics = FUNNEL_TOPICS
    rows_version = 3  # 3: the deals' as-of versions
    tables = (
        "funnel_opportunities",
        "funnel_stage_intervals",
        "funnel_stage_totals",
        "funnel_dimension_totals",
        "funnel_deal_versions",
    )
    indexes = {
        "funnel_opportunities_status_stage": "funnel_opportunities (status, stage)",
        "funnel_opportunities_expected_close": "funnel_opportunities (status, expected_close)",
        "funnel_opportunities_closed_on": "funnel_opportunities (status, closed_on)",
        "funnel_stage_intervals_time": "funnel_stage_intervals (entered_at, left_at)",
    }
    dialect_indexes = {
        "funnel_opportunities_owner": {
            "postgres": "funnel_opportunities (owner_id, status) INCLUDE (region, product, "
            "source, expected_close, closed_on, stage, qualification, amount, won_amount)",
            "sqlite": "funnel_opportunities (owner_id, status)",
        },
        "funnel_opportunities_version_from": {
            "postgres": "funnel_opportunities (status, version_from) INCLUDE (stage, "
            "qualification, amount, won_amount, owner_id, region, product, source, "
            "expected_close, closed_on)",
            "sqlite": "funnel_opportunities (status, version_from)",
        },
        "funnel_deal_versions_span": {
            "postgres": "funnel_deal_versions (span_class, valid_from) INCLUDE (valid_to, "
            "stage, status, amount, owner_id, region, product, source, close_date)",
            "sqlite": "funnel_deal_versions (span_class, valid_from)",
        },
    }
    """On PostgreSQL covering, so that their queries read the index only: by owner (owners
    with other criteria), and the deal states alive at a moment (the as-of funnel)."""

    def create_indexes(self, tx: Transaction) -> None:
        super().create_indexes(tx)
        for index, definitions in self.dialect_indexes.items():
            definition = definitions.get(tx.dialect, definitions["sqlite"])
            tx.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {definition}")

    def drop_indexes(self, tx: Transaction) -> None:
        super().drop_indexes(tx)
        for index in self.dialect_indexes:
            tx.execute(f"DROP INDEX IF EXISTS {index}")

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "funnel_opportunities ("
            "opportunity_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, owner_id TEXT NOT NULL, "
            "title TEXT NOT NULL, source TEXT NOT NULL, product TEXT NOT NULL, "
            "region TEXT NOT NULL, amount NUMERIC NOT NULL, expected_close TEXT NOT NULL, "
            "stage INTEGER NOT NULL, status TEXT NOT NULL, qualification TEXT NOT NULL, "
            "opened_at TEXT NOT NULL, stage_entered_at TEXT NOT NULL, max_stage INTEGER NOT NULL, "
            "won_amount NUMERIC, closed_on TEXT, closed_at TEXT, "
            "events_until TEXT NOT NULL, version_from TEXT NOT NULL)",
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
        create_version_table(tx)

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
        record_version = pending.versions.record
        deals.load(tx, keys_from_earlier_batches(relevant, "OpportunityOpened"))
        current = deals.rows.get  # not ``deals.get``: a call less per event, measurable here
        first_seen, last_seen = totals.before, totals.after
        for recorded in relevant:
            before = current(recorded.aggregate_id)
            row, interval = evolve_deal(before, recorded)
            if row is not None and row is not before:
                record_version(before, row, recorded.recorded_at)
                deals.put(row)
                deal_id = recorded.aggregate_id
                if deal_id not in first_seen:  # the totals' before and after (inline: per event)
                    first_seen[deal_id] = before
                last_seen[deal_id] = row
            if interval is not None:
                intervals.append(interval)
        # Intervals and finished versions are only ever appended: written with their
        # batch, so that the rows pending in a long transaction are only the deals'
        # (bounded by the deals).
        write_rows(tx, "funnel_stage_intervals", INTERVAL_COLUMNS, intervals)
        intervals.clear()
        pending.versions.write(tx)

    def flush(self, tx: Transaction, pending: Any) -> None:
        pending.deals.flush(tx)
        pending.totals.write(tx)


class _FunnelChanges:
    """The funnel's changes pending in one transaction: each changed deal's row (written
    once, however many batches changed it), the stage intervals and deal versions its
    batch closed, the totals."""

    def __init__(self) -> None:
        self.deals = KeyedRows(
            "funnel_opportunities", "opportunity_id", DEAL_COLUMNS + CURRENT_VERSION_COLUMNS
        )
        self.intervals: list[tuple[Any, ...]] = []
        self.versions = DealVersions()
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
