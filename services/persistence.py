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
still to commit: followers see every event, in order, exactly once.
"""

from __future__ import annotations

import threading
from uuid import UUID
from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Notification,
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
from psycopg.sql import SQL, Identifier

Claim = tuple[str, str]
"""A unique key and the value recorded with it (e.g. the id of the customer holding it)."""

INSERT_LOCK_KEY = 0x53414C45  # "SALE": the advisory lock that orders event inserts
POLL_INTERVAL_SECONDS = 0.25


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    """Application recorder with claims, short insert locks and a safe read horizon."""

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
        self.ledger_insert_function = f"ledger_append_{self.events_table_name}"
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "events {schema}.{event_type}[], claim_keys text[], claim_values text[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
                "DECLARE ids bigint[]; "
                "BEGIN "
                "  PERFORM pg_advisory_lock({key}); "
                "  BEGIN "
                "    WITH inserted AS ("
                "      INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
                "      SELECT originator_id, originator_version, topic, state FROM unnest(events) "
                "      RETURNING notification_id) "
                "    SELECT array_agg(notification_id ORDER BY notification_id) INTO ids FROM inserted; "
                "  EXCEPTION WHEN OTHERS OR query_canceled THEN "
                "    PERFORM pg_advisory_unlock({key}); "
                "    RAISE; "
                "  END; "
                "  PERFORM pg_advisory_unlock({key}); "
                "  INSERT INTO {schema}.ledger_claims (claim, value) "
                "    SELECT * FROM unnest(claim_keys, claim_values); "
                "  NOTIFY {channel}; "
                "  RETURN QUERY SELECT unnest(ids); "
                "END; $BODY$"
            ).format(
                schema=schema,
                function=Identifier(self.ledger_insert_function),
                event_type=Identifier(self.stored_event_type_name),
                key=INSERT_LOCK_KEY,
                table=table,
                channel=Identifier(self.channel_name),
            )
        )
        self.sql_append = SQL("SELECT * FROM {schema}.{function}(%s, %s, %s)").format(
            schema=schema, function=Identifier(self.ledger_insert_function)
        )
        self.sql_insert_claims = SQL(
            "INSERT INTO {schema}.ledger_claims (claim, value) VALUES (%s, %s)"
        ).format(schema=schema)
        self.sql_select_claims = SQL(
            "SELECT claim, value FROM {schema}.ledger_claims WHERE claim = ANY(%s)"
        ).format(schema=schema)
        self.sql_select_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::uuid[], %s::bigint[]) AS p(id, version) "
            "JOIN {schema}.{table} e ON e.originator_id = p.id AND e.originator_version > p.version "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(schema=schema, table=table)
        self.horizon = SQL("tx_id < pg_snapshot_xmin(pg_current_snapshot())")
        self.max_notification_id_statement = SQL(
            "SELECT MAX(notification_id) FROM {schema}.{table} WHERE {horizon}"
        ).format(schema=schema, table=table, horizon=self.horizon)

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        claims: Iterable[Claim] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        pg_events = [
            self.construct_pg_stored_event(
                e.originator_id, e.originator_version, e.topic, e.state
            )
            for e in stored_events
        ]
        claim_rows = list(claims)
        # One statement, so one round trip and its own transaction: the function takes
        # the insert lock only while the rows are inserted (see the module docstring).
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self.sql_append,
                (pg_events, [k for k, _ in claim_rows], [v for _, v in claim_rows]),
                prepare=True,
            )
            return [row[self.ledger_insert_function] for row in curs.fetchall()]

    def select_events_after(self, positions: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """In one round trip, the events of several aggregates after the given versions."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self.sql_select_after,
                ([p[0] for p in positions], [p[1] for p in positions]),
                prepare=True,
            )
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

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
        conditions = [self.horizon]
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

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PollingPostgresSubscription(recorder=self, gt=gt, topics=topics)


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


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder with claims; SQLite has one writer, so order holds."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS ledger_claims ("
            "claim TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        ]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        claims: Iterable[Claim] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        claim_rows = list(claims)
        if claim_rows:
            c.executemany("INSERT INTO ledger_claims (claim, value) VALUES (?, ?)", claim_rows)
        return ids

    def select_events_after(self, positions: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        for originator_id, version in positions:
            events.extend(self.select_events(originator_id, gt=version))
        return events

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
