"""Event store recorders for the ledger, on PostgreSQL and on embedded SQLite.

Both add a ``ledger_claims`` table written in the same transaction as the events:
a claim is a unique key (a customer's normalised tax id, a client's command id…)
that the database refuses to record twice, so uniqueness holds even when two
writers race.

On PostgreSQL, events are inserted by one function that takes a *session* advisory
lock only around the insert itself and releases it before the commit, so commits of
concurrent writers overlap (group commit) instead of queueing behind one table lock.
Every row records the id of its writing transaction (``tx_id``). Because transaction
ids and notification ids are both issued inside the lock, their orders agree, and a
reader that only returns rows whose ``tx_id`` is below its snapshot's ``xmin`` (all
older transactions finished) can never pass over a lower notification id that is
still to commit: followers see every event, in order, exactly once. The horizon
leaves out transactions of other databases of the cluster (``ledger_read_horizon``), so
only a long writing transaction in this database delays followers (never reorders
them) until it ends; ``max_committed_notification_id`` tells how far behind it is.

Each append is one statement in its own transaction (one round trip). It also checks an
optional *guard* — an aggregate the decision read but did not write, in practice the
organisation — and refuses the append if that aggregate moved on, so the application
can decide on cached state and still never act on stale state. Appends do not NOTIFY
inside their transaction (that would serialise commits again); a coalescing notifier
thread does it after the commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    ApplicationRecorder,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    Notification,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
    Subscription,
)
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
    PostgresSubscription,
)
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import InsufficientPrivilege
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composable, Composed, Identifier

from commands.concurrency import GuardMovedError
from services.chain import (
    GENESIS,
    ChainedRecord,
    ChainRow,
    Seal,
    event_hash,
    pack_positions,
    split_hashes,
    unpack_positions,
)
from services.seal_function import create_seal_function, seal_function_name
from services.subject_keys import (
    SQLITE_CREATE_SUBJECT_KEYS,
    PostgresSubjectKeys,
    SQLiteSubjectKeys,
    postgres_create_subject_keys,
)
from services.transparency.store import create_statements as tree_tables

Claim = tuple[str, str]
"""A unique key and the value recorded with it (e.g. the id of the customer holding it)."""

INSERT_LOCK_KEY = 0x53414C45  # "SALE": the advisory lock that orders event inserts
POLL_INTERVAL_SECONDS = 0.25
SCHEMA_LOCK_KEY = 0x53434845  # "SCHE": serialises schema creation between processes
GUARD_SQLSTATE = "LG001"
NOTIFY_RETRY_SECONDS = 1.0
NOTIFY_COALESCE_SECONDS = 0.02
DEFAULT_OWN_CONNECTIONS = 3
"""Append connections of one recorder at most, unless ``LEDGER_APPEND_CONNECTIONS`` says."""
TOPIC_SCAN_WINDOW = 16
"""A topic-filtered read (``select_topic_rows``) scans at most this many times its limit
of positions: a follower of rare topics moves on in bounded steps."""


class CoalescingNotifier:
    """Wakes LISTENing followers after appends, from a thread of its own.

    A transaction that runs NOTIFY holds a cluster-wide lock through its commit, which
    would queue every writer's commit behind the previous one's disk flush; so appends
    do not notify themselves. Appends within 20 ms share one NOTIFY, sent on a connection
    of its own, and followers also poll, so a lost wake-up only costs latency.
    """

    def __init__(self, connections: OwnConnections, channel: str) -> None:
        self._connections = connections
        self._statement = SQL("NOTIFY {channel}").format(channel=Identifier(channel))
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        if not self._wanted.is_set():  # setting it takes a lock; most pokes find it set
            self._wanted.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                with self._connections.cursor() as curs:
                    curs.execute(self._statement)
            except Exception:  # noqa: BLE001 - the recorder is closed or the server away
                threading.Event().wait(NOTIFY_RETRY_SECONDS)
            else:
                # Appends in the next few milliseconds share the next NOTIFY.
                threading.Event().wait(NOTIFY_COALESCE_SECONDS)


class OwnConnections:
    """Connections kept outside the datastore's pool, for the appends and the notifier:
    a stack of open connections (each with its cursor), one per concurrent user.

    Checking a connection out of the pool and back costs about as much client time as
    the append's own statement (locks, bookkeeping, a maintenance hand-off), and the
    append is the hot path. Connections are made like the pool's, reused most recently
    returned first, and dropped when they break; the rest close with the recorder.
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        prepare: Callable[[psycopg.Connection[Any]], None] | None = None,
    ) -> None:
        self._datastore = datastore
        self._prepare = prepare
        """Run on each new connection (to prepare its statements)."""
        self._idle: list[psycopg.Cursor[tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._slots = threading.BoundedSemaphore(DEFAULT_OWN_CONNECTIONS)
        self._wait = datastore.pool.timeout

    def limit(self, connections: int, wait: float) -> None:
        """At most ``connections`` open at once (the process's connection budget); a
        user waits ``wait`` seconds for one, then gets an ``OperationalError``. Set
        before first use."""
        self._slots = threading.BoundedSemaphore(connections)
        self._wait = wait

    @contextlib.contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[tuple[Any, ...]]]:
        """A cursor (tuple rows) on an open connection, for one statement; errors surface
        as the datastore's would."""
        slots = self._slots
        if not slots.acquire(timeout=self._wait):
            raise OperationalError(
                f"no database connection free for appends within {self._wait:g} s"
            )
        try:
            with self._checked_out() as curs:
                yield curs
        finally:
            slots.release()

    @contextlib.contextmanager
    def _checked_out(self) -> Iterator[psycopg.Cursor[tuple[Any, ...]]]:
        with self._lock:
            if self._closed:
                raise InterfaceError("the recorder is closed")
            curs = self._idle.pop() if self._idle else None
        try:
            if curs is None or curs.connection.closed:
                curs = self._connect().cursor(row_factory=tuple_row)
            yield curs
        except psycopg.Error as error:
            if curs is not None and (curs.connection.broken or curs.connection.closed):
                curs.connection.close()
                curs = None
            raise _persistence_error(error) from error
        finally:
            if curs is not None:
                with self._lock:
                    if self._closed:
                        curs.connection.close()
                    else:
                        self._idle.append(curs)

    def _connect(self) -> psycopg.Connection[Any]:
        pool = self._datastore.pool
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        kwargs = dict((pool.kwargs() if callable(pool.kwargs) else pool.kwargs) or {})
        if pool.get_password_func is not None:
            kwargs["password"] = pool.get_password_func()
        conn: psycopg.Connection[Any] = psycopg.Connection.connect(conninfo, **kwargs)
        self._datastore.after_connect_func()(conn)
        if self._prepare is not None:
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def backend_pids(self) -> list[int]:
        """The server process ids of the idle append connections."""
        with self._lock:
            return [curs.connection.info.backend_pid for curs in self._idle]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for curs in idle:
            curs.connection.close()


APPEND_ONE_STATEMENT = b"ledger_append_one"
"""The prepared one-event append's name on each append connection."""
_TYPES = psycopg.postgres.types
APPEND_ONE_TYPES = [
    _TYPES["uuid"].oid,
    _TYPES["int8"].oid,
    _TYPES["text"].oid,
    _TYPES["bytea"].oid,
    _TYPES["text"].array_oid,
    _TYPES["text"].array_oid,
    _TYPES["uuid"].oid,
    _TYPES["int8"].oid,
]
"""The one-event append's parameter types, in the append function's order."""
_APPEND_ONE_FORMATS = [1, 1, 0, 1, 0, 0, 1, 1]  # binary, except the texts
_INT8 = struct.Struct(">q")


def _append_one(
    conn: psycopg.Connection[Any],
    event: StoredEvent,
    claim_keys: list[str] | None,
    claim_values: list[str] | None,
    guard_id: UUID | None,
    guard_version: int | None,
) -> int:
    """Append one event by the prepared statement, through libpq; its position.

    The hot path of every command. psycopg's cursor spends about 70 µs of client CPU
    per call on its own machinery (adapting, the prepared-statement cache, a Python
    wait loop), as much as the raw baseline's whole insert; this sends the parameters
    already in the server's binary form and lets libpq wait, with the GIL released.
    Errors are psycopg's own, so callers handle them as before.
    """
    originator_id = event.originator_id
    values: list[bytes | None] = [
        (originator_id if isinstance(originator_id, UUID) else UUID(originator_id)).bytes,
        _INT8.pack(event.originator_version),
        event.topic.encode(),
        event.state,
        None if claim_keys is None else _text_array(conn, claim_keys),
        None if claim_values is None else _text_array(conn, claim_values),
        None if guard_id is None else guard_id.bytes,
        None if guard_version is None else _INT8.pack(guard_version),
    ]
    pgconn = conn.pgconn
    # None is sent as NULL (psycopg's own calls rely on it; its type hint leaves it out).
    params = cast("list[bytes]", values)
    result = pgconn.exec_prepared(APPEND_ONE_STATEMENT, params, _APPEND_ONE_FORMATS, 1)
    if result.status != pq.ExecStatus.TUPLES_OK:
        if pgconn.status == pq.ConnStatus.BAD:
            raise psycopg.OperationalError(result.get_error_message(conn.info.encoding))
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    position: int = _INT8.unpack(result.get_value(0, 0) or b"")[0]
    return position


def _text_array(conn: psycopg.Connection[Any], values: list[str]) -> bytes:
    """``values`` as a PostgreSQL text array literal (psycopg's own dumper)."""
    return bytes(Transformer(conn).get_dumper(values, PyFormat.TEXT).dump(values) or b"")


def _scan_for_topics(
    start: int,
    limit: int,
    final: int,
    select: Callable[[int], list[tuple[int, str, int, str, bytes]]],
) -> tuple[list[tuple[int, str, int, str, bytes]], int]:
    """``select_topic_rows`` of either recorder: scan the positions after ``start`` up to
    ``final`` (every one up to it is final), at most ``TOPIC_SCAN_WINDOW`` × ``limit`` of
    them; ``select(upto)`` gives at most ``limit`` rows of the topics in (``start``,
    ``upto``]. The rows, and the position read up to: the last row's if ``limit`` came
    back (more may follow), else ``upto``."""
    upto = min(final, start + TOPIC_SCAN_WINDOW * limit)
    if upto <= start:
        return [], start
    rows = select(upto)
    return rows, rows[-1][0] if len(rows) == limit else upto


def _persistence_error(error: psycopg.Error) -> PersistenceError:
    """The eventsourcing error the datastore raises for ``error`` (its same mapping)."""
    for psycopg_class, mapped in _ERROR_MAPPING:
        if isinstance(error, psycopg_class):
            return mapped(str(error))
    return PersistenceError(str(error))


_ERROR_MAPPING: tuple[tuple[type[psycopg.Error], type[PersistenceError]], ...] = (
    (psycopg.InterfaceError, InterfaceError),
    (psycopg.OperationalError, OperationalError),
    (psycopg.DataError, DataError),
    (psycopg.IntegrityError, IntegrityError),
    (psycopg.InternalError, InternalError),
    (psycopg.ProgrammingError, ProgrammingError),
    (psycopg.NotSupportedError, NotSupportedError),
    (psycopg.DatabaseError, DatabaseError),
)


class LedgerPostgresRecorder(PostgresApplicationRecorder, PostgresSubjectKeys):
    """Application recorder with claims, short insert locks, a safe read horizon and
    the per-aggregate hash chain (see ``services.chain``)."""

    chain_events = True
    """Compute each event's chained hash in the append function (off only to measure its cost)."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self.sql_create_statements.append(
            SQL(
                "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS "
                "tx_id xid8 NOT NULL DEFAULT pg_current_xact_id()"
            ).format(schema=schema, table=table)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.ledger_claims ("
                "claim text PRIMARY KEY, value text NOT NULL, "
                "recorded_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema=schema)
        )
        self.sql_create_statements.append(postgres_create_subject_keys(self.datastore.schema))
        self.sql_create_statements.append(
            SQL("ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS hash bytea").format(
                schema=schema, table=table
            )
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.ledger_seals ("
                "upto_position bigint PRIMARY KEY, after_position bigint NOT NULL UNIQUE, "
                "positions bytea NOT NULL, event_hashes bytea NOT NULL, "
                "ledger_hash bytea NOT NULL, sealed_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema=schema)
        )
        self.sql_create_statements.extend(
            SQL(statement).format()
            for statement in tree_tables("postgres", self.datastore.schema)
        )
        self.ledger_seal_function = seal_function_name(self.events_table_name)
        self.sql_create_statements.append(
            create_seal_function(self.datastore.schema, self.events_table_name)
        )
        self.ledger_insert_function = f"ledger_append_{self.events_table_name}"
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids uuid[], versions bigint[], topics text[], states bytea[], "
                "claim_keys text[], claim_values text[], "
                "guard_id uuid, guard_version bigint) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
                "DECLARE positions bigint[]; hashes bytea[] := '{{}}'; previous bytea; "
                "  i int; j int; keys text[] := '{{}}'; "
                "BEGIN "
                "{guard}"
                "{chain}"
                "  PERFORM pg_advisory_lock({key}); "
                "    WITH inserted AS ("
                "      INSERT INTO {schema}.{table} "
                "        (originator_id, originator_version, topic, state, hash) "
                "      SELECT u.originator_id, u.originator_version, u.topic, u.state, hashes[u.n] "
                "      FROM unnest(ids, versions, topics, states) WITH ORDINALITY "
                "        AS u(originator_id, originator_version, topic, state, n) ORDER BY u.n "
                "      RETURNING notification_id) "
                "    SELECT array_agg(notification_id ORDER BY notification_id) INTO positions "
                "      FROM inserted; "
                "  PERFORM pg_advisory_unlock({key}); "
                "{claims}"
                "  RETURN QUERY SELECT unnest(positions); "
                "END; $BODY$"
            ).format(
                schema=schema,
                function=Identifier(self.ledger_insert_function),
                guard=self._sql_guard_check(),
                chain=self._sql_chain_hashes() if self.chain_events else SQL(""),
                key=INSERT_LOCK_KEY,
                table=table,
                claims=self._sql_record_claims(),
            )
        )
        self.ledger_insert_one_function = f"ledger_append_one_{self.events_table_name}"
        self.sql_create_statements.append(self._sql_create_append_one())
        self.sql_append = (
            SQL("SELECT * FROM {schema}.{function}(%s, %s, %s, %s, %s, %s, %s, %s)")
            .format(schema=schema, function=Identifier(self.ledger_insert_function))
            .as_string(None)
        )
        # Most commands append one event: a function of scalars, without the batch's
        # arrays, loop and set-returning result, costs the server about a fifth less. It
        # is prepared on each append connection and run through libpq (``_append_one``).
        self.sql_append_one = (
            SQL("SELECT {schema}.{function}($1, $2, $3, $4, $5, $6, $7, $8)")
            .format(schema=schema, function=Identifier(self.ledger_insert_one_function))
            .as_string(None)
            .encode()
        )
        self._append_connections = OwnConnections(self.datastore, prepare=self._prepare_append_one)
        self.sql_insert_claims = SQL(
            "INSERT INTO {schema}.ledger_claims (claim, value) VALUES (%s, %s)"
        ).format(schema=schema)
        self.sql_select_claims = SQL(
            "SELECT claim, value FROM {schema}.ledger_claims WHERE claim = ANY(%s)"
        ).format(schema=schema)
        self.sql_create_statements.append(self._sql_create_read_horizon())
        # A scalar subquery: the horizon is computed once per statement, not per row.
        self.horizon = SQL("tx_id < (SELECT {schema}.ledger_read_horizon())").format(
            schema=schema
        )
        self.sql_unlock_all = SQL("SELECT pg_advisory_unlock_all()")
        self.sql_max_committed = SQL("SELECT MAX(notification_id) FROM {schema}.{table}").format(
            schema=schema, table=table
        )
        self._notify_connection = OwnConnections(self.datastore)
        self._notifier = CoalescingNotifier(self._notify_connection, self.channel_name)
        self.max_notification_id_statement = SQL(
            "SELECT MAX(notification_id) FROM {schema}.{table} WHERE {horizon}"
        ).format(schema=schema, table=table, horizon=self.horizon)
        self.sql_select_topic_rows = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id > %s AND notification_id <= %s "
            "AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, table=table)

    def _sql_create_read_horizon(self) -> Composed:
        """The read horizon: the oldest transaction still running that could be writing
        events here, so that every row with a lower ``tx_id`` is final.

        The snapshot's ``xmin`` would do, but it counts every database of the cluster: a
        transaction left open in another database would hold every follower back until
        it ends. So the running transaction ids are those of the snapshot less the ones
        that backends of other databases hold (``pg_stat_get_activity``, which every role
        may read). A transaction of this database is never left out: ids are never
        reused while running, and a backend never changes database (prepared
        transactions, which have no backend, are kept)."""
        return SQL(
            "CREATE OR REPLACE FUNCTION {schema}.ledger_read_horizon() RETURNS xid8 "
            "LANGUAGE sql STABLE AS $BODY$ "
            "WITH snapshot AS (SELECT pg_current_snapshot() AS s), "
            "elsewhere AS (SELECT a.backend_xid::text::bigint AS xid "
            "  FROM pg_stat_get_activity(NULL) a WHERE a.backend_xid IS NOT NULL "
            "  AND a.datid IS DISTINCT FROM "
            "    (SELECT oid FROM pg_database WHERE datname = current_database())) "
            "SELECT coalesce(min(x), pg_snapshot_xmax((SELECT s FROM snapshot))) "
            "FROM snapshot, pg_snapshot_xip(snapshot.s) AS x "
            "WHERE x::text::bigint % 4294967296 NOT IN (SELECT xid FROM elsewhere) "
            "$BODY$"
        ).format(schema=Identifier(self.datastore.schema))

    def _sql_create_append_one(self) -> Composed:
        """The append function for one event: the batch function's steps, on scalars."""
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        chain = (
            SQL(
                "  SELECT s.hash INTO previous FROM {schema}.{table} s "
                "  WHERE s.originator_id = id AND s.originator_version = version - 1; "
                "  hash := {hash}; "
            ).format(
                schema=schema,
                table=table,
                hash=self._sql_event_hash("id", "version", "topic", "state"),
            )
            if self.chain_events
            else SQL("")
        )
        return SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}("
            "id uuid, version bigint, topic text, state bytea, "
            "claim_keys text[], claim_values text[], guard_id uuid, guard_version bigint) "
            "RETURNS bigint LANGUAGE plpgsql AS $BODY$ "
            "DECLARE position bigint; previous bytea; hash bytea; "
            "BEGIN "
            "{guard}"
            "{chain}"
            "  PERFORM pg_advisory_lock({key}); "
            "  INSERT INTO {schema}.{table} "
            "    (originator_id, originator_version, topic, state, hash) "
            "    VALUES (id, version, topic, state, hash) RETURNING notification_id INTO position; "
            "  PERFORM pg_advisory_unlock({key}); "
            "{claims}"
            "  RETURN position; "
            "END; $BODY$"
        ).format(
            schema=schema,
            function=Identifier(self.ledger_insert_one_function),
            table=table,
            guard=self._sql_guard_check(),
            chain=chain,
            key=INSERT_LOCK_KEY,
            claims=self._sql_record_claims(),
        )

    def _sql_guard_check(self) -> Composed:
        """The append functions' first step: refuse the append if the guarded aggregate
        (``guard_id``) has moved past ``guard_version``.

        An aggregate's versions are consecutive, so it has moved on exactly when its next
        version exists: a lookup of one whole key, which every plan does by the index.
        (``originator_version > guard_version`` under ``EXISTS`` let the function's
        cached generic plan switch to a sequential scan once a few aggregates held most
        of the rows — the scan looks cheap for "find any one row" — and each append then
        read the whole table: 10 ms of server CPU per command in the write bench.)"""
        return SQL(
            "  IF guard_id IS NOT NULL AND EXISTS (SELECT 1 FROM {schema}.{table} g "
            "     WHERE g.originator_id = guard_id "
            "       AND g.originator_version = guard_version + 1) THEN "
            "    RAISE EXCEPTION 'aggregate % moved past version %', guard_id, guard_version "
            "      USING ERRCODE = '{guard_code}'; "
            "  END IF; "
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            guard_code=SQL(GUARD_SQLSTATE),
        )

    def _sql_record_claims(self) -> Composed:
        """The append functions' last step: record the claims in the same transaction."""
        return SQL(
            "  IF claim_keys IS NOT NULL THEN "
            "    INSERT INTO {schema}.ledger_claims (claim, value) "
            "      SELECT * FROM unnest(claim_keys, claim_values); "
            "  END IF; "
        ).format(schema=Identifier(self.datastore.schema))

    @staticmethod
    def _sql_event_hash(originator_id: str, version: str, topic: str, state: str) -> Composed:
        """An event's chained hash from ``previous`` and its columns (PL/pgSQL
        expressions): the bytes ``services.chain.event_hash`` hashes in Python."""
        return SQL(
            "sha256(coalesce(previous, {genesis}) || uuid_send({id}) "
            "|| int8send({version}) || int4send(octet_length({topic})) "
            "|| convert_to({topic}, 'UTF8') || {state})"
        ).format(
            genesis=SQL("'\\x{}'::bytea").format(SQL(GENESIS.hex())),
            id=SQL(originator_id),
            version=SQL(version),
            topic=SQL(topic),
            state=SQL(state),
        )

    def _sql_chain_hashes(self) -> Composable:
        """The part of the append function, before the lock, that hashes each event
        onto the previous hash of its aggregate (from the same batch, wherever it stands
        in it, or from the table).

        Writers of one aggregate are serialised by its (originator_id, version) key:
        the previous version is committed before anyone can append the next one.
        """
        return SQL(
            "  FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP "
            "    keys[i] := ids[i]::text || ':' || versions[i]; "
            "    IF i > 1 AND ids[i - 1] = ids[i] AND versions[i - 1] = versions[i] - 1 THEN "
            "      previous := hashes[i - 1]; "
            "    ELSE "
            "      j := array_position(keys, ids[i]::text || ':' || (versions[i] - 1)); "
            "      IF j IS NOT NULL THEN "
            "        previous := hashes[j]; "
            "      ELSE "
            "        SELECT s.hash INTO previous FROM {schema}.{table} s "
            "        WHERE s.originator_id = ids[i] AND s.originator_version = versions[i] - 1; "
            "      END IF; "
            "    END IF; "
            "    hashes[i] := {hash}; "
            "    previous := NULL; "
            "  END LOOP; "
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            hash=self._sql_event_hash("ids[i]", "versions[i]", "topics[i]", "states[i]"),
        )

    def create_table(self) -> None:
        """Create or update the schema; a role that may not (the application role of
        ``salesledger init-db``) uses the schema its owner created."""
        if self._schema_is_current():
            self.datastore.register_type_adapters()
            return
        try:
            super().create_table()
        except InsufficientPrivilege:
            self.datastore.register_type_adapters()

    @property
    def schema_fingerprint(self) -> str:
        """A digest of every statement that creates the schema: it changes with them."""
        text = "\n".join(
            s if isinstance(s, str) else s.as_string(None) for s in self.sql_create_statements
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _schema_is_current(self) -> bool:
        # Re-running the DDL takes table locks that deadlock with live writers, so a
        # process that finds the schema already made by this very code leaves it be.
        try:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(
                    SQL(
                        "SELECT fingerprint FROM {schema}.ledger_schema WHERE fingerprint = %s"
                    ).format(schema=Identifier(self.datastore.schema)),
                    (self.schema_fingerprint,),
                )
                return curs.fetchone() is not None
        except (ProgrammingError, PersistenceError):
            return False

    def _create_table(self, curs: Any) -> None:
        # Processes starting together would deadlock on each other's DDL; take turns.
        curs.execute(SQL("SELECT pg_advisory_xact_lock({key})").format(key=SCHEMA_LOCK_KEY))
        super()._create_table(curs)
        schema = Identifier(self.datastore.schema)
        curs.execute(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.ledger_schema (fingerprint text PRIMARY KEY)"
            ).format(schema=schema)
        )
        curs.execute(
            SQL("INSERT INTO {schema}.ledger_schema VALUES (%s) ON CONFLICT DO NOTHING").format(
                schema=schema
            ),
            (self.schema_fingerprint,),
        )

    # The chains: reads for the verifier and the sealer, and seals.

    def horizon_position(self) -> int:
        """The highest position below the read horizon: every lower one is final."""
        return self.max_notification_id() or 0

    def select_chained(self, after: int, upto: int, limit: int) -> list[ChainedRecord]:
        """Events after position ``after`` up to ``upto``, in order, with their hashes."""
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state, hash "
            "FROM {schema}.{table} WHERE notification_id > %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (after, upto, limit), prepare=True)
            return [
                ChainedRecord(row[0], row[1], row[2], row[3], bytes(row[4]), _bytes_or_none(row[5]))
                for row in curs.fetchall()
            ]

    def select_chain_rows(self, after: int, upto: int, limit: int) -> list[ChainRow]:
        """``select_chained`` as plain tuples in binary format: the id's 16 bytes and the
        topic's UTF-8 bytes as the server stores them, so that no ``UUID`` or ``str`` is
        made per event on the verifier's path."""
        statement = SQL(
            "SELECT notification_id, uuid_send(originator_id), originator_version, "
            "convert_to(topic, 'UTF8'), state, hash "
            "FROM {schema}.{table} WHERE notification_id > %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(
            binary=True, row_factory=tuple_row
        ) as curs:
            curs.execute(statement, (after, upto, limit), prepare=True)
            return curs.fetchall()

    def select_aggregate_chain(self, originator_id: UUID) -> list[ChainedRecord]:
        """One aggregate's events in version order, with positions and hashes."""
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state, hash "
            "FROM {schema}.{table} WHERE originator_id = %s ORDER BY originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (originator_id,))
            return [
                ChainedRecord(row[0], row[1], row[2], row[3], bytes(row[4]), _bytes_or_none(row[5]))
                for row in curs.fetchall()
            ]

    def select_hashes(
        self, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], bytes | None]:
        """The stored hashes of the given (aggregate, version) pairs that exist."""
        if not keys:
            return {}
        statement = SQL(
            "SELECT e.originator_id, e.originator_version, e.hash "
            "FROM unnest(%s::uuid[], %s::bigint[]) AS k(id, version) "
            "JOIN {schema}.{table} e ON e.originator_id = k.id AND e.originator_version = k.version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, ([k[0] for k in keys], [k[1] for k in keys]))
            return {(row[0], row[1]): _bytes_or_none(row[2]) for row in curs.fetchall()}

    def select_seals(self, after: int = 0, upto: int | None = None) -> list[Seal]:
        """Seals that end after position ``after`` (and start before ``upto``), in order."""
        statement = SQL(
            "SELECT after_position, upto_position, positions, event_hashes, ledger_hash, sealed_at "
            "FROM {schema}.ledger_seals WHERE upto_position > %s AND after_position < %s "
            "ORDER BY upto_position"
        ).format(schema=Identifier(self.datastore.schema))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (after, upto if upto is not None else 2**62))
            return [_seal_from_row(row) for row in curs.fetchall()]

    def select_sealed_hashes(self, positions: Sequence[int]) -> tuple[int, dict[int, bytes]]:
        """Where the seals end, and the sealed hash of each of ``positions`` that a seal
        holds: each found by the seals' primary key and cut out of its seal by the server
        (a position's place in its seal, when the stretch has no gap), so a deal's history
        reads a few dozen bytes per event, not every seal of the ledger."""
        schema = Identifier(self.datastore.schema)
        statement = SQL(
            "SELECT p.pos, s.upto_position, CASE WHEN substring(s.positions FROM "
            "((p.pos - s.after_position - 1) * 8 + 1)::int FOR 8) = int8send(p.pos) "
            "THEN substring(s.event_hashes FROM ((p.pos - s.after_position - 1) * 32 + 1)::int "
            "FOR 32) END FROM unnest(%s::bigint[]) AS p(pos) CROSS JOIN LATERAL ("
            "SELECT after_position, upto_position, positions, event_hashes "
            "FROM {schema}.ledger_seals WHERE upto_position >= p.pos "
            "ORDER BY upto_position LIMIT 1) s WHERE s.after_position < p.pos"
        ).format(schema=schema)
        upto = SQL("SELECT MAX(upto_position) FROM {schema}.ledger_seals").format(schema=schema)
        found: dict[int, bytes] = {}
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(upto)
            row = curs.fetchone()
            sealed_upto = int(row[0]) if row and row[0] is not None else 0
            if not positions or not sealed_upto:
                return sealed_upto, found
            curs.execute(statement, (list(positions),))
            gapped: dict[int, list[int]] = {}
            for position, seal_end, sealed in curs.fetchall():
                if sealed is None:
                    gapped.setdefault(seal_end, []).append(position)
                else:
                    found[position] = bytes(sealed)
        for seal_end, wanted in gapped.items():  # a stretch with gaps: look inside it
            seal = self.last_seal(upto=seal_end)
            if seal is not None:
                found.update(_sealed_hashes_of(seal, wanted))
        return sealed_upto, found

    def last_seal(self, upto: int | None = None) -> Seal | None:
        """The latest seal (ending at or before ``upto``), if any."""
        statement = SQL(
            "SELECT after_position, upto_position, positions, event_hashes, ledger_hash, sealed_at "
            "FROM {schema}.ledger_seals WHERE upto_position <= %s "
            "ORDER BY upto_position DESC LIMIT 1"
        ).format(schema=Identifier(self.datastore.schema))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (upto if upto is not None else 2**62,))
            row = curs.fetchone()
            return _seal_from_row(row) if row else None

    def insert_seal(self, seal: Seal) -> bool:
        """Record a seal; False if another sealer recorded that stretch first. The
        function refuses one that the stored events do not yield (``seal_function``)."""
        statement = SQL("SELECT {schema}.{function}(%s, %s, %s, %s, %s) AS recorded").format(
            schema=Identifier(self.datastore.schema),
            function=Identifier(self.ledger_seal_function),
        )
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                statement,
                (
                    seal.after_position,
                    seal.upto_position,
                    pack_positions(seal.positions),
                    b"".join(seal.event_hashes),
                    seal.ledger_hash,
                ),
            )
            row = curs.fetchone()
            return bool(row and row["recorded"])

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        claims: Iterable[Claim] = (),
        guard: tuple[UUID, int] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """Append events with their claims, in one transaction.

        ``guard`` is (aggregate id, version): the append is refused with
        ``GuardMovedError`` if that aggregate has events past that version — for
        decisions that read an aggregate (the organisation) they do not write."""
        if not stored_events:
            return []
        claim_rows = list(claims)
        guard_id, guard_version = guard if guard is not None else (None, None)
        # One statement, so one round trip and its own transaction: the function takes
        # the insert lock only while the rows are inserted (see the module docstring).
        claim_keys = [k for k, _ in claim_rows] if claim_rows else None
        claim_values = [v for _, v in claim_rows] if claim_rows else None
        try:
            with self._append_connections.cursor() as curs:
                try:
                    if len(stored_events) == 1:
                        positions = [
                            _append_one(
                                curs.connection,
                                stored_events[0],
                                claim_keys,
                                claim_values,
                                guard_id,
                                guard_version,
                            )
                        ]
                    else:
                        parameters = (
                            [e.originator_id for e in stored_events],
                            [e.originator_version for e in stored_events],
                            [e.topic for e in stored_events],
                            [e.state for e in stored_events],
                            claim_keys,
                            claim_values,
                            guard_id,
                            guard_version,
                        )
                        rows = curs.execute(self.sql_append, parameters, prepare=True).fetchall()
                        positions = [row[0] for row in rows]
                except psycopg.Error:
                    # A failed insert (e.g. a version conflict) skipped the unlock; the
                    # session lock must not outlive it. A broken session has lost it anyway.
                    with contextlib.suppress(psycopg.Error):
                        curs.execute(self.sql_unlock_all)
                    raise
        except PersistenceError as error:
            if getattr(error.__cause__, "sqlstate", None) == GUARD_SQLSTATE:
                raise GuardMovedError(str(error.__cause__)) from None
            raise
        self._notifier.poke()
        return positions

    def _prepare_append_one(self, conn: psycopg.Connection[Any]) -> None:
        """Prepare the one-event append on a new append connection."""
        result = conn.pgconn.prepare(APPEND_ONE_STATEMENT, self.sql_append_one, APPEND_ONE_TYPES)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)

    def limit_append_connections(self, connections: int, wait: float) -> None:
        """Append on at most ``connections`` connections at once, waiting ``wait`` seconds
        for one (then ``OperationalError``)."""
        self._append_connections.limit(connections, wait)

    def close_own_connections(self) -> None:
        self._append_connections.close()
        self._notify_connection.close()

    def max_committed_notification_id(self) -> int:
        """The highest committed position, past the read horizon: followers that are
        "caught up" wait until ``max_notification_id()`` reaches it (it trails while
        an older transaction anywhere in the cluster is still running)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.sql_max_committed)
            row = curs.fetchone()
            return int(row["max"]) if row and row["max"] is not None else 0

    def select_claims(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded values of those of ``keys`` that are claimed."""
        if not keys:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.sql_select_claims, (list(keys),))
            return {row["claim"]: row["value"] for row in curs.fetchall()}

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        conditions: list[Composable] = [self.horizon]
        params: list[Any] = []
        if start is not None:
            conditions.append(
                SQL("notification_id >= %s") if inclusive_of_start else SQL("notification_id > %s")
            )
            params.append(start)
        if stop is not None:
            conditions.append(SQL("notification_id <= %s"))
            params.append(stop)
        if topics:
            conditions.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        params.append(limit)
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE {conditions} ORDER BY notification_id LIMIT %s"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            conditions=SQL(" AND ").join(conditions),
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def select_notification_rows(
        self, start: int, limit: int
    ) -> list[tuple[int, str, int, str, bytes]]:
        """The notifications after ``start`` (below the read horizon, as
        ``select_notifications``) as plain tuples: position, originator id as text,
        originator version, topic, state. For followers that decode the state themselves.

        Fetched in binary: the states arrive as they are stored, where the text format
        sends each as hex for both sides to convert (a million rows: about a second less
        of the follower's CPU, measured)."""
        statement = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {schema}.{table} WHERE {horizon} AND notification_id > %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            horizon=self.horizon,
        )
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(statement, [start, limit], prepare=True)
            return curs.fetchall()

    def select_topic_rows(
        self, start: int, limit: int, topics: Sequence[str]
    ) -> tuple[list[tuple[int, str, int, str, bytes]], int]:
        """The notifications after ``start`` whose topic is one of ``topics`` (at most
        ``limit``, as ``select_notification_rows`` gives them), and the position read up
        to: the last one returned if ``limit`` were, else the read horizon (or ``start``
        + ``TOPIC_SCAN_WINDOW`` × ``limit``, so that one read scans a bounded range).
        Every event up to that position has been seen, those of other topics passed
        over: a follower of a few topics moves its position past the rest.

        The horizon is read first; every position below it is final (see the class), so
        the second statement, later, sees them all."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self.max_notification_id_statement, prepare=True)
            found = curs.fetchone()
            horizon = int(found[0]) if found and found[0] is not None else 0

            def select(upto: int) -> list[tuple[int, str, int, str, bytes]]:
                curs.execute(
                    self.sql_select_topic_rows, [start, upto, list(topics), limit], prepare=True
                )
                return curs.fetchall()

            return _scan_for_topics(start, limit, horizon, select)

    def select_notification_rows_at(
        self, positions: Sequence[int]
    ) -> list[tuple[int, str, int, str, bytes]]:
        """The notifications at ``positions`` (those that exist), in position order, as
        ``select_notification_rows`` gives them. For readers holding positions from an
        index, such as the audit trail."""
        statement = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id = ANY(%s) ORDER BY notification_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(statement, [list(positions)])
            return curs.fetchall()

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PollingPostgresSubscription(recorder=self, gt=gt, topics=topics)


def _bytes_or_none(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _sealed_hashes_of(seal: Seal, positions: Sequence[int]) -> dict[int, bytes]:
    """The hashes ``seal`` holds for those of ``positions`` it sealed."""
    index = {position: n for n, position in enumerate(seal.positions)}
    return {
        position: seal.event_hashes[index[position]]
        for position in positions
        if position in index and seal.after_position < position
    }


def _seal_from_row(row: Sequence[Any]) -> Seal:
    return Seal(
        after_position=row[0],
        upto_position=row[1],
        positions=unpack_positions(bytes(row[2])),
        event_hashes=split_hashes(bytes(row[3])),
        ledger_hash=bytes(row[4]),
        sealed_at=str(row[5]),
    )


class PollingPostgresSubscription(PostgresSubscription):
    """LISTEN/NOTIFY subscription that also polls, since a committed event becomes
    readable only once every older writing transaction has finished."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._poll_thread = threading.Thread(target=self._poll, daemon=True)
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._has_been_stopped:
            self._has_been_notified.set()
            threading.Event().wait(POLL_INTERVAL_SECONDS)


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = LedgerPostgresRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._recorders: list[LedgerPostgresRecorder] = []
        """Recorders made here, whose own connections close with the factory."""

    def application_recorder(self) -> ApplicationRecorder:
        recorder = super().application_recorder()
        if isinstance(recorder, LedgerPostgresRecorder):
            connections = int(self.env.get("LEDGER_APPEND_CONNECTIONS") or DEFAULT_OWN_CONNECTIONS)
            recorder.limit_append_connections(connections, self.datastore.pool.timeout)
            self._recorders.append(recorder)
        return recorder

    def close(self) -> None:
        for recorder in self._recorders:
            recorder.close_own_connections()
        super().close()


class LedgerSQLiteRecorder(SQLiteApplicationRecorder, SQLiteSubjectKeys):
    """SQLite application recorder with claims and the per-aggregate hash chain, computed
    in Python; SQLite has one writer, so order holds and the previous hash is final."""

    chain_events = True

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        self.insert_events_statement = (
            f"INSERT INTO {self.events_table_name} "
            "(originator_id, originator_version, topic, state, hash) VALUES (?, ?, ?, ?, ?)"
        )

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS ledger_claims ("
            "claim TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            SQLITE_CREATE_SUBJECT_KEYS,
            "CREATE TABLE IF NOT EXISTS ledger_seals ("
            "upto_position INTEGER PRIMARY KEY, after_position INTEGER NOT NULL UNIQUE, "
            "positions BLOB NOT NULL, event_hashes BLOB NOT NULL, ledger_hash BLOB NOT NULL, "
            "sealed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            *tree_tables("sqlite"),
        ]

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"PRAGMA table_info({self.events_table_name})")
            if "hash" not in {row["name"] for row in c.fetchall()}:
                c.execute(f"ALTER TABLE {self.events_table_name} ADD COLUMN hash BLOB")

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        claims: Iterable[Claim] = (),
        guard: tuple[UUID, int] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if guard is not None:
            c.execute(
                # Its next version, as on PostgreSQL: one key, always by the index.
                f"SELECT 1 FROM {self.events_table_name} "
                "WHERE originator_id = ? AND originator_version = ?",
                (guard[0].hex, guard[1] + 1),
            )
            if c.fetchone() is not None:
                raise GuardMovedError(f"aggregate {guard[0]} moved past version {guard[1]}")
        ids: list[int] = []
        previous: dict[UUID, tuple[int, bytes]] = {}
        for stored in stored_events:
            uid = UUID(str(stored.originator_id))
            hash_: bytes | None = None
            if self.chain_events:
                prior = previous.get(uid)
                if prior is not None and prior[0] == stored.originator_version - 1:
                    previous_hash: bytes | None = prior[1]
                else:
                    c.execute(
                        f"SELECT hash FROM {self.events_table_name} "
                        "WHERE originator_id = ? AND originator_version = ?",
                        (uid.hex, stored.originator_version - 1),
                    )
                    row = c.fetchone()
                    previous_hash = row["hash"] if row is not None else None
                hash_ = event_hash(
                    previous_hash or GENESIS,
                    uid,
                    stored.originator_version,
                    stored.topic,
                    stored.state,
                )
                previous[uid] = (stored.originator_version, hash_)
            c.execute(
                self.insert_events_statement,
                (uid.hex, stored.originator_version, stored.topic, stored.state, hash_),
            )
            ids.append(c.lastrowid or 0)
        claim_rows = list(claims)
        if claim_rows:
            c.executemany("INSERT INTO ledger_claims (claim, value) VALUES (?, ?)", claim_rows)
        return ids

    # The chains: reads for the verifier and the sealer, and seals.

    def horizon_position(self) -> int:
        return self.max_notification_id() or 0

    def select_chained(self, after: int, upto: int, limit: int) -> list[ChainedRecord]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state, hash "
                f"FROM {self.events_table_name} WHERE rowid > ? AND rowid <= ? "
                "ORDER BY rowid LIMIT ?",
                (after, upto, limit),
            )
            return [_sqlite_record(row) for row in c.fetchall()]

    def select_chain_rows(self, after: int, upto: int, limit: int) -> list[ChainRow]:
        """``select_chained`` as plain tuples (see the PostgreSQL recorder)."""
        return [
            (r.position, r.originator_id.bytes, r.version, r.topic.encode(), r.state, r.hash)
            for r in self.select_chained(after, upto, limit)
        ]

    def select_aggregate_chain(self, originator_id: UUID) -> list[ChainedRecord]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state, hash "
                f"FROM {self.events_table_name} WHERE originator_id = ? "
                "ORDER BY originator_version",
                (originator_id.hex,),
            )
            return [_sqlite_record(row) for row in c.fetchall()]

    def select_hashes(
        self, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], bytes | None]:
        found: dict[tuple[UUID, int], bytes | None] = {}
        with self.datastore.transaction(commit=False) as c:
            for originator_id, version in keys:
                c.execute(
                    f"SELECT hash FROM {self.events_table_name} "
                    "WHERE originator_id = ? AND originator_version = ?",
                    (originator_id.hex, version),
                )
                row = c.fetchone()
                if row is not None:
                    found[(originator_id, version)] = row["hash"]
        return found

    def select_seals(self, after: int = 0, upto: int | None = None) -> list[Seal]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT after_position, upto_position, positions, event_hashes, ledger_hash, "
                "sealed_at FROM ledger_seals WHERE upto_position > ? AND after_position < ? "
                "ORDER BY upto_position",
                (after, upto if upto is not None else 2**62),
            )
            return [_seal_from_row(tuple(row)) for row in c.fetchall()]

    def select_sealed_hashes(self, positions: Sequence[int]) -> tuple[int, dict[int, bytes]]:
        """As on PostgreSQL: where the seals end, and the sealed hashes of ``positions``."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT MAX(upto_position) FROM ledger_seals")
            row = c.fetchone()
        sealed_upto = int(row[0]) if row is not None and row[0] is not None else 0
        found: dict[int, bytes] = {}
        by_seal: dict[int, list[int]] = {}
        for position in positions:
            if position > sealed_upto:
                continue
            with self.datastore.transaction(commit=False) as c:
                c.execute(
                    "SELECT upto_position FROM ledger_seals WHERE upto_position >= ? "
                    "ORDER BY upto_position LIMIT 1",
                    (position,),
                )
                end = c.fetchone()
            if end is not None:
                by_seal.setdefault(int(end[0]), []).append(position)
        for seal_end, wanted in by_seal.items():
            seal = self.last_seal(upto=seal_end)
            if seal is not None:
                found.update(_sealed_hashes_of(seal, wanted))
        return sealed_upto, found

    def last_seal(self, upto: int | None = None) -> Seal | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT after_position, upto_position, positions, event_hashes, ledger_hash, "
                "sealed_at FROM ledger_seals WHERE upto_position <= ? "
                "ORDER BY upto_position DESC LIMIT 1",
                (upto if upto is not None else 2**62,),
            )
            row = c.fetchone()
            return _seal_from_row(tuple(row)) if row is not None else None

    def insert_seal(self, seal: Seal) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO ledger_seals "
                "(after_position, upto_position, positions, event_hashes, ledger_hash) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    seal.after_position,
                    seal.upto_position,
                    pack_positions(seal.positions),
                    b"".join(seal.event_hashes),
                    seal.ledger_hash,
                ),
            )
            return bool(c.sqlite_cursor.rowcount == 1)

    def max_committed_notification_id(self) -> int:
        """SQLite has one writer: what is committed is readable."""
        return self.max_notification_id() or 0

    def select_claims(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        placeholders = ",".join("?" * len(keys))
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT claim, value FROM ledger_claims WHERE claim IN ({placeholders})",
                list(keys),
            )
            return {row["claim"]: row["value"] for row in c.fetchall()}

    def select_notification_rows(
        self, start: int, limit: int
    ) -> list[tuple[int, str, int, str, bytes]]:
        """The notifications after ``start`` as plain tuples: position, originator id as
        text, originator version, topic, state (see the PostgreSQL recorder)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                [start, limit],
            )
            return [tuple(row) for row in c.fetchall()]

    def select_topic_rows(
        self, start: int, limit: int, topics: Sequence[str]
    ) -> tuple[list[tuple[int, str, int, str, bytes]], int]:
        """The notifications after ``start`` of ``topics``, and the position read up to
        (see the PostgreSQL recorder; SQLite has one writer, so no horizon)."""
        placeholders = ",".join("?" * len(topics))
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}")
            found = c.fetchone()
            last = int(found[0]) if found and found[0] is not None else 0

            def select(upto: int) -> list[tuple[int, str, int, str, bytes]]:
                c.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} WHERE rowid > ? AND rowid <= ? "
                    f"AND topic IN ({placeholders}) ORDER BY rowid LIMIT ?",
                    [start, upto, *topics, limit],
                )
                return [tuple(row) for row in c.fetchall()]

            return _scan_for_topics(start, limit, last, select)

    def select_notification_rows_at(
        self, positions: Sequence[int]
    ) -> list[tuple[int, str, int, str, bytes]]:
        """The notifications at ``positions`` (see the PostgreSQL recorder)."""
        if not positions:
            return []
        placeholders = ",".join("?" * len(positions))
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE rowid IN ({placeholders}) ORDER BY rowid",
                list(positions),
            )
            return [tuple(row) for row in c.fetchall()]


def _sqlite_record(row: Any) -> ChainedRecord:
    return ChainedRecord(
        position=row[0],
        originator_id=UUID(row[1]),
        version=row[2],
        topic=row[3],
        state=bytes(row[4]),
        hash=None if row[5] is None else bytes(row[5]),
    )


class LedgerSQLiteFactory(SQLiteFactory):
    application_recorder_class = LedgerSQLiteRecorder


__all__ = [
    "Claim",
    "IntegrityError",
    "LedgerPostgresFactory",
    "LedgerPostgresRecorder",
    "LedgerSQLiteFactory",
    "LedgerSQLiteRecorder",
]
