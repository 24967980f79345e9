"""What every projection shares: the event envelope, its table helpers, its contract."""

from __future__ import annotations

import hashlib
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any, ClassVar, NamedTuple

from eventsourcing.utils import get_topic

from projections.store import Row, Transaction

IN_CLAUSE_CHUNK = 500


class RecordedEvent(NamedTuple):
    """A decoded domain event with its global position and its envelope, read once."""

    position: int
    event: Any
    type_name: str
    aggregate_id: str
    recorded_at: str
    actor: str
    state: bytes | None = None
    """The stored JSON of the event, when the event was decoded from it directly."""

    @classmethod
    def of(cls, position: int, event: Any, recorded_at: str | None = None) -> RecordedEvent:
        """``recorded_at`` (the event's timestamp as ``iso_timestamp`` text) if known."""
        return cls(
            position,
            event,
            type(event).__name__,
            str(event.originator_id),
            recorded_at or iso_timestamp(event.timestamp),
            str(getattr(event, "actor", "")),
        )


def iso_timestamp(moment: datetime) -> str:
    """A UTC timestamp as fixed-width ISO-8601 text, so that text order is time order."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@lru_cache(maxsize=4096)
def _iso_week_of_day(day: str) -> str:
    return iso_week(date.fromisoformat(day))


def week_of(recorded_at: str) -> str:
    """The ISO week of an ``iso_timestamp`` text (a UTC time), e.g. ``2026-W09``."""
    return _iso_week_of_day(recorded_at[:10])


def sql_value(value: Any) -> Any:
    """A Python value as a parameter both SQLite and PostgreSQL accept."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def as_decimal(value: Any) -> Decimal:
    """A NUMERIC column's value (Decimal on PostgreSQL, int/float on SQLite) as Decimal."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def topics_of(event_types: Iterable[type]) -> tuple[str, ...]:
    """The stored topics of ``event_types`` (for ``Projection.topics``)."""
    return tuple(get_topic(cls) for cls in event_types)


class Projection(ABC):
    """A read model: owns ``tables``, folds batches of events into them.

    ``process`` runs inside the worker's transaction, which also records the new
    position, so rows and position always commit together.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    indexes: ClassVar[dict[str, str]] = {}
    """Secondary indexes for the queries, name → ``table (columns)``."""
    topics: ClassVar[tuple[str, ...] | None] = None
    """The topics of the events the projection applies; None: it reads every event. A
    runner whose projections all name theirs reads only those topics (on a log mostly
    of others, a worker process of its own then reads and decodes a fraction of it)."""
    rows_version: ClassVar[int] = 1
    """Raised when the same tables come to hold different rows for the same events, so
    that projections made by an earlier version are rebuilt (``schema_fingerprint``)."""

    @abstractmethod
    def create_tables(self, tx: Transaction) -> None:
        """Create the tables (and, with ``create_indexes``, their indexes) if they do not exist."""

    def create_indexes(self, tx: Transaction) -> None:
        for index, definition in self.indexes.items():
            tx.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {definition}")

    def drop_indexes(self, tx: Transaction) -> None:
        """Drop the secondary indexes ``create_indexes`` makes (not the primary keys)."""
        for index in self.indexes:
            tx.execute(f"DROP INDEX IF EXISTS {index}")

    @abstractmethod
    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        """Apply a batch of events, in position order."""

    def begin(self) -> Any:
        """Changes pending in one transaction that spans several batches (see ``apply``)."""
        return None

    def apply(self, tx: Transaction, pending: Any, events: Sequence[RecordedEvent]) -> None:
        """Apply a batch of events in a transaction that may apply more batches before
        ``flush``: a projection may keep its changes in ``pending`` (from ``begin``) and
        write each changed row once at ``flush``. By default: ``process`` at once."""
        self.process(tx, events)

    def flush(self, tx: Transaction, pending: Any) -> None:  # noqa: B027 - by default nothing is pending
        """Write ``pending``, before the transaction records the position and commits."""

    def drop_tables(self, tx: Transaction) -> None:
        for table in self.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table}")

    def schema_fingerprint(self, dialect: str) -> str:
        """A digest of the statements that create the tables and indexes on ``dialect``,
        and of ``rows_version``: it changes when a new version of the projection stores
        different rows."""
        ddl = _StatementLog(dialect)
        ddl.execute(f"-- rows version {self.rows_version}")
        self.create_tables(ddl)
        self.create_indexes(ddl)
        return hashlib.sha256("\n".join(ddl.statements).encode()).hexdigest()[:16]


class _StatementLog:
    """A transaction that only notes the statements given to it (for DDL digests)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.statements: list[str] = []
        self.temporary_tables: set[str] = set()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.statements.append(sql)
        return []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements.append(sql)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.statements.append(f"COPY {table} ({', '.join(columns)})")

    def copy_text(self, table: str, columns: Sequence[str], text: str) -> None:
        self.statements.append(f"COPY {table} ({', '.join(columns)})")


def create_table(tx: Transaction, definition: str) -> None:
    """``CREATE TABLE IF NOT EXISTS`` ``definition`` (name and columns).

    On PostgreSQL its ``TEXT`` columns compare byte by byte (``COLLATE "C"``), as SQLite's
    do: the keys and indexed columns hold ids, ISO dates and codes, whose byte order is
    their order, and locale-aware comparisons made every index insert dearer (the audit
    trail's ``COPY`` took a quarter longer with the database's default collation).
    """
    if tx.dialect == "postgres":
        definition = _TEXT_COLUMN.sub('TEXT COLLATE "C"', definition)
    tx.execute(f"CREATE TABLE IF NOT EXISTS {definition}")


_TEXT_COLUMN = re.compile(r"\bTEXT\b")


def write_rows(
    tx: Transaction,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    on_conflict: str = "",
) -> None:
    """Insert ``rows`` (values in ``columns`` order) into ``table``.

    Values may be ``Decimal`` and ``date`` as well as SQL scalars. On PostgreSQL rows
    stream through ``COPY``: plain appends straight into ``table``, upserts into a
    session-local staging table (``_staging_table``) that one statement then empties into
    ``table`` with ``on_conflict``. (Encoding the rows as one JSON parameter for
    ``json_populate_recordset`` cost a fifth of the catch-up's Python time, measured.)
    On SQLite (in-process) ``executemany`` is as fast.
    """
    if not rows:
        return
    names = ", ".join(columns)
    if not on_conflict:
        tx.copy_rows(table, columns, rows)
        return
    if tx.dialect == "postgres":
        staging = _staging_table(tx, table, names)
        tx.copy_rows(staging, columns, rows)
        tx.execute(
            f"WITH staged AS (DELETE FROM {staging} RETURNING {names}) "
            f"INSERT INTO {table} ({names}) SELECT {names} FROM staged{on_conflict}"
        )
        return
    placeholders = ", ".join(["%s"] * len(columns))
    tx.executemany(
        f"INSERT INTO {table} ({names}) VALUES ({placeholders}){on_conflict}",
        [[sql_value(value) for value in row] for row in rows],
    )


def add_to_totals(
    tx: Transaction,
    table: str,
    keys: Sequence[str],
    changes: Sequence[Sequence[Any]],
) -> None:
    """Add ``changes`` (the ``keys`` values, then a count and an amount) to ``table``'s
    ``count`` and ``amount``, and delete the rows whose count drops to zero: a totals
    table holds exactly the keys that have something to count, whatever batches the
    changes came in (a rebuild and a projection maintained event by event agree).
    """
    if not changes:
        return
    key_names = ", ".join(keys)
    columns = (*keys, "count", "amount")
    names = ", ".join(columns)
    update = (
        f" ON CONFLICT ({key_names}) DO UPDATE SET count = {table}.count + excluded.count, "
        f"amount = {table}.amount + excluded.amount"
    )
    if tx.dialect == "postgres":
        staging = _staging_table(tx, table, names)
        tx.copy_rows(staging, columns, changes)
        emptied = tx.execute(
            f"WITH staged AS (DELETE FROM {staging} RETURNING {names}), "
            f"added AS (INSERT INTO {table} ({names}) SELECT {names} FROM staged{update} "
            f"RETURNING {key_names}, count) SELECT {key_names} FROM added WHERE count = 0"
        )
        keyed = [[row[k] for k in keys] for row in emptied]
    else:
        write_rows(tx, table, columns, changes, update)
        touched = {tuple(sql_value(v) for v in change[: len(keys)]) for change in changes}
        emptied = tx.execute(f"SELECT {key_names} FROM {table} WHERE count = 0")
        keyed = [[row[k] for k in keys] for row in emptied]
        keyed = [key for key in keyed if tuple(key) in touched]
    if keyed:
        matches = " AND ".join(f"{k} = %s" for k in keys)
        tx.executemany(f"DELETE FROM {table} WHERE {matches} AND count = 0", keyed)


def _staging_table(tx: Transaction, table: str, names: str) -> str:
    """A temporary table of this session with ``table``'s ``names`` columns and types (one
    per set of columns), but no constraints or indexes; created once per session and
    emptied at every commit, so an error between its ``COPY`` and its use leaves nothing
    behind. The session remembers it (``tx.temporary_tables``, forgotten on a rollback),
    so that it is looked up on the server only once per session."""
    staging = f"{table}_staged_{zlib.crc32(names.encode()):08x}"
    if staging in tx.temporary_tables:
        return staging
    if not tx.execute(f"SELECT to_regclass('pg_temp.{staging}') AS staging")[0]["staging"]:
        tx.execute(
            f"CREATE TEMPORARY TABLE {staging} ON COMMIT DELETE ROWS AS "
            f"SELECT {names} FROM {table} WITH NO DATA"
        )
    tx.temporary_tables.add(staging)
    return staging


class KeyedRows:
    """The rows of one table touched by a batch: loaded in one go, written back in one go."""

    def __init__(self, table: str, key: str, columns: Sequence[str]) -> None:
        self.table = table
        self.key = key
        self.columns = tuple(columns)
        self.rows: dict[str, Row] = {}
        self._dirty: set[str] = set()
        self._values = _values_of(self.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c != key)
        self._on_conflict = f" ON CONFLICT ({key}) DO UPDATE SET {updates}"

    def load(self, tx: Transaction, keys: Iterable[str]) -> None:
        """Read the rows of ``keys`` that exist: on PostgreSQL in one statement (the keys
        as one array parameter), on SQLite in chunks of ``IN_CLAUSE_CHUNK``."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self.rows]
        if not wanted:
            return
        if tx.dialect == "postgres":
            rows = tx.execute(
                f"SELECT {', '.join(self.columns)} FROM {self.table} "
                f"WHERE {self.key} = ANY(%s::text[])",
                [wanted],
            )
            self.rows.update((str(row[self.key]), row) for row in rows)
            return
        for start in range(0, len(wanted), IN_CLAUSE_CHUNK):
            chunk = wanted[start : start + IN_CLAUSE_CHUNK]
            placeholders = ", ".join(["%s"] * len(chunk))
            for row in tx.execute(
                f"SELECT {', '.join(self.columns)} FROM {self.table} "
                f"WHERE {self.key} IN ({placeholders})",
                chunk,
            ):
                self.rows[str(row[self.key])] = row

    def get(self, key: str) -> Row | None:
        return self.rows.get(key)

    def put(self, row: Row) -> None:
        key = str(row[self.key])
        self.rows[key] = row
        self._dirty.add(key)

    def flush(self, tx: Transaction) -> None:
        write_rows(
            tx,
            self.table,
            self.columns,
            [self._values(self.rows[k]) for k in sorted(self._dirty)],
            self._on_conflict,
        )
        self.rows.clear()
        self._dirty.clear()


def keys_from_earlier_batches(events: Iterable[RecordedEvent], created_by: str) -> list[str]:
    """The aggregates of ``events`` that may have rows from earlier batches: all but those
    whose first event here is ``created_by``, which start from nothing (most of a
    catch-up's aggregates, so most lookups are saved)."""
    first: dict[str, str] = {}
    for recorded in events:
        first.setdefault(recorded.aggregate_id, recorded.type_name)
    return [key for key, kind in first.items() if kind != created_by]


def insert_rows(tx: Transaction, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Append rows to a table in one round trip."""
    values = _values_of(columns)
    write_rows(tx, table, columns, [values(row) for row in rows])


def _values_of(columns: Sequence[str]) -> Callable[[Row], tuple[Any, ...]]:
    """A function giving a row's values in ``columns`` order, as a tuple (built in C)."""
    pick = itemgetter(*columns)
    if len(columns) == 1:
        return lambda row: (pick(row),)
    return pick


def add_counts(
    tx: Transaction, table: str, keys: Sequence[str], counts: dict[tuple[Any, ...], int]
) -> None:
    """Add ``counts`` (keyed by the values of ``keys``) to a counter table's ``count``."""
    columns = [*keys, "count"]
    write_rows(
        tx,
        table,
        columns,
        [[*key, n] for key, n in sorted(counts.items())],
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET count = {table}.count + excluded.count",
    )


def in_clause(values: Sequence[Any]) -> str:
    """``IN (%s, …)`` for ``values``; an always-false condition when empty."""
    if not values:
        return "IN (NULL)"
    return "IN (" + ", ".join(["%s"] * len(values)) + ")"
