"""The reads ``verify``'s claims check makes: the claims table streamed once, and the
events the claims name and their subjects' keys, a batch at a time (PostgreSQL and
SQLite)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from services.persistence import OwnConnections
from services.subject_keys import SUBJECT_KEYS_TABLE

CLAIMS_PAGE = 5000
"""Claims read per round trip."""
SQLITE_CHUNK = 500
"""Aggregate ids per SQLite ``IN (…)`` (its limit on parameters is lower than PostgreSQL's)."""


class ClaimsStore(Protocol):
    """What the claims check reads."""

    def iter_claims(self) -> Iterator[tuple[str, str]]:
        """Every (claim, value), ordered by value and then claim: the claims of one
        customer (whose value is its id) come together."""
        ...

    def select_claims(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded values of those of ``keys`` that are claimed."""
        ...

    def select_events_at(
        self, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], StoredEvent]:
        """The stored events at those (aggregate, version) that exist."""
        ...

    def select_events_of(self, ids: Sequence[UUID], topics: Sequence[str]) -> list[StoredEvent]:
        """The stored events of those aggregates with one of ``topics``, by aggregate and
        version."""
        ...

    def select_subject_keys(self, subjects: Sequence[str]) -> dict[str, bytes]:
        """The personal-data keys of those of ``subjects`` that have one (``b""`` if
        destroyed), in one read."""
        ...


class PostgresClaimsStore:
    """The claims check's reads on PostgreSQL: the claims through a server-side cursor
    (sorted once by the server, streamed), the events by their primary key."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        self.schema = Identifier(recorder.datastore.schema)
        self.table = Identifier(recorder.events_table_name)

    def iter_claims(self) -> Iterator[tuple[str, str]]:
        """On a connection of its own, outside the pool (the other reads need the pool's
        while the claims stream), in a read-only transaction that may stay idle between
        pages as long as the check takes: it holds no transaction id, so it does not hold
        back the followers' read horizon."""
        statement = SQL("SELECT claim, value FROM {schema}.ledger_claims ORDER BY value, claim")
        own = OwnConnections(self.datastore)
        try:
            with own.cursor() as plain, plain.connection.transaction(force_rollback=True):
                plain.execute("SET TRANSACTION READ ONLY")
                plain.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                with plain.connection.cursor(
                    name="ledger_claims_check", row_factory=tuple_row
                ) as curs:
                    curs.itersize = CLAIMS_PAGE
                    curs.execute(statement.format(schema=self.schema))
                    yield from curs
        finally:
            own.close()

    def select_claims(self, keys: Sequence[str]) -> dict[str, str]:
        return dict(self.recorder.select_claims(keys))

    def select_events_at(
        self, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], StoredEvent]:
        if not keys:
            return {}
        statement = SQL(
            # One primary-key lookup per key (a plain join of a few thousand keys is
            # planned as a hash join over the whole table).
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::uuid[], %s::bigint[]) AS k(id, version) CROSS JOIN LATERAL ("
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = k.id AND originator_version = k.version) e"
        ).format(schema=self.schema, table=self.table)
        rows = self._fetch(statement, ([k[0] for k in keys], [k[1] for k in keys]))
        return {(UUID(str(event.originator_id)), event.originator_version): event for event in rows}

    def select_events_of(self, ids: Sequence[UUID], topics: Sequence[str]) -> list[StoredEvent]:
        if not ids:
            return []
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s::uuid[]) AND topic = ANY(%s) "
            "ORDER BY originator_id, originator_version"
        ).format(schema=self.schema, table=self.table)
        return self._fetch(statement, (list(ids), list(topics)))

    def select_subject_keys(self, subjects: Sequence[str]) -> dict[str, bytes]:
        if not subjects:
            return {}
        statement = SQL("SELECT subject, key FROM {schema}.{keys} WHERE subject = ANY(%s)")
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(
                statement.format(schema=self.schema, keys=Identifier(SUBJECT_KEYS_TABLE)),
                (list(subjects),),
            )
            return {subject: bytes(key) for subject, key in curs.fetchall()}

    def _fetch(self, statement: Any, parameters: tuple[Any, ...]) -> list[StoredEvent]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(statement, parameters)
            return [_stored(*row) for row in curs.fetchall()]


class SQLiteClaimsStore:
    """The claims check's reads on SQLite: the claims a page at a time (keyset on value
    and claim), the events by their primary key."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        self.table = recorder.events_table_name

    def iter_claims(self) -> Iterator[tuple[str, str]]:
        last: tuple[str, str] | None = None
        while True:
            with self.datastore.transaction(commit=False) as c:
                if last is None:
                    c.execute(
                        "SELECT claim, value FROM ledger_claims ORDER BY value, claim LIMIT ?",
                        (CLAIMS_PAGE,),
                    )
                else:
                    c.execute(
                        "SELECT claim, value FROM ledger_claims WHERE value > ? "
                        "OR (value = ? AND claim > ?) ORDER BY value, claim LIMIT ?",
                        (last[1], last[1], last[0], CLAIMS_PAGE),
                    )
                page = [(row["claim"], row["value"]) for row in c.fetchall()]
            yield from page
            if len(page) < CLAIMS_PAGE:
                return
            last = page[-1]

    def select_claims(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), SQLITE_CHUNK):
            found.update(self.recorder.select_claims(keys[start : start + SQLITE_CHUNK]))
        return found

    def select_events_at(
        self, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], StoredEvent]:
        found: dict[tuple[UUID, int], StoredEvent] = {}
        with self.datastore.transaction(commit=False) as c:
            for originator_id, version in keys:
                c.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM {self.table} "
                    "WHERE originator_id = ? AND originator_version = ?",
                    (originator_id.hex, version),
                )
                row = c.fetchone()
                if row is not None:
                    found[(originator_id, version)] = _stored(*row)
        return found

    def select_events_of(self, ids: Sequence[UUID], topics: Sequence[str]) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), SQLITE_CHUNK):
                chunk = [uid.hex for uid in ids[start : start + SQLITE_CHUNK]]
                c.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM {self.table} "
                    f"WHERE originator_id IN ({','.join('?' * len(chunk))}) "
                    f"AND topic IN ({','.join('?' * len(topics))}) "
                    "ORDER BY originator_id, originator_version",
                    [*chunk, *topics],
                )
                events.extend(_stored(*row) for row in c.fetchall())
        return events


    def select_subject_keys(self, subjects: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(subjects), SQLITE_CHUNK):
                chunk = list(subjects[start : start + SQLITE_CHUNK])
                c.execute(
                    f"SELECT subject, key FROM {SUBJECT_KEYS_TABLE} "
                    f"WHERE subject IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update((row["subject"], bytes(row["key"])) for row in c.fetchall())
        return found


def claims_store_for(recorder: Any) -> ClaimsStore:
    """The claims check's reads in the same database as ``recorder``."""
    if type(recorder.datastore).__module__.startswith("eventsourcing.postgres"):
        return PostgresClaimsStore(recorder)
    return SQLiteClaimsStore(recorder)


def _stored(originator_id: Any, version: int, topic: str, state: bytes) -> StoredEvent:
    uid = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    return StoredEvent(
        originator_id=uid, originator_version=int(version), topic=topic, state=bytes(state)
    )
