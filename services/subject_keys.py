"""The key table of personal data (``commands.personal_data.SubjectKeyStore``), on
PostgreSQL and SQLite: one AES key per data subject, kept apart from the events.

The table is the one ledger table rows of which change: destroying a key overwrites it
with no bytes and stamps ``erased_at`` (the tombstone says "erased", not "never had a
key"). It is not hash-chained and not append-only, and it must be backed up and
restored with the events (docs/erasure.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.sql import SQL, Identifier

SUBJECT_KEYS_TABLE = "ledger_subject_keys"

SQLITE_CREATE_SUBJECT_KEYS = (
    f"CREATE TABLE IF NOT EXISTS {SUBJECT_KEYS_TABLE} ("
    "subject TEXT PRIMARY KEY, key BLOB NOT NULL, "
    "created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, erased_at TEXT)"
)


def postgres_create_subject_keys(schema: str) -> Any:
    """The statement that creates the key table in ``schema``."""
    return SQL(
        "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
        "subject text PRIMARY KEY, key bytea NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now(), erased_at timestamptz)"
    ).format(schema=Identifier(schema), table=Identifier(SUBJECT_KEYS_TABLE))


class SQLiteSubjectKeys:
    """The key table in the SQLite store (mixed into its recorder)."""

    datastore: Any

    def select_subject_key(self, subject: str) -> bytes | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT key FROM {SUBJECT_KEYS_TABLE} WHERE subject = ?", (subject,))
            row = c.fetchone()
            return None if row is None else bytes(row["key"])

    def insert_subject_key(self, subject: str, key: bytes) -> bytes:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO {SUBJECT_KEYS_TABLE} (subject, key) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (subject, key),
            )
            c.execute(f"SELECT key FROM {SUBJECT_KEYS_TABLE} WHERE subject = ?", (subject,))
            return bytes(c.fetchone()["key"])

    def insert_subject_keys(self, keys: Sequence[tuple[str, bytes]]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(
                f"INSERT INTO {SUBJECT_KEYS_TABLE} (subject, key) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                list(keys),
            )

    def destroy_subject_key(self, subject: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute("PRAGMA secure_delete = ON")
            c.execute(
                f"INSERT INTO {SUBJECT_KEYS_TABLE} (subject, key, erased_at) "
                "VALUES (?, x'', CURRENT_TIMESTAMP) ON CONFLICT (subject) DO UPDATE "
                "SET key = x'', erased_at = COALESCE(erased_at, CURRENT_TIMESTAMP)",
                (subject,),
            )

    def erased_subjects(self) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT subject FROM {SUBJECT_KEYS_TABLE} "
                "WHERE erased_at IS NOT NULL ORDER BY subject"
            )
            return [str(row["subject"]) for row in c.fetchall()]


class PostgresSubjectKeys:
    """The key table in the PostgreSQL store (mixed into its recorder)."""

    datastore: Any

    def _table(self) -> Any:
        return SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(SUBJECT_KEYS_TABLE)
        )

    def select_subject_key(self, subject: str) -> bytes | None:
        statement = SQL("SELECT key FROM {table} WHERE subject = %s").format(table=self._table())
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (subject,))
            row = curs.fetchone()
            return None if row is None else bytes(row["key"])

    def insert_subject_key(self, subject: str, key: bytes) -> bytes:
        # One statement, committed without waiting for the WAL flush: the key is only
        # ever used by an event appended after it, whose (synchronous) commit flushes
        # the WAL past the key's, so a key is never lost while an event needs it.
        statement = SQL(
            "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)), "
            "inserted AS (INSERT INTO {table} (subject, key) SELECT %s, %s FROM relaxed "
            "ON CONFLICT DO NOTHING RETURNING key) "
            "SELECT key FROM inserted UNION ALL SELECT key FROM {table} WHERE subject = %s"
        ).format(table=self._table())
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(statement, (subject, key, subject))
            row = curs.fetchone()
            if row is None:  # another process inserted it meanwhile: after our snapshot
                curs.execute(
                    SQL("SELECT key FROM {table} WHERE subject = %s").format(table=self._table()),
                    (subject,),
                )
                row = curs.fetchone()
            return bytes(row["key"])

    def insert_subject_keys(self, keys: Sequence[tuple[str, bytes]]) -> None:
        # Committed without waiting for the WAL flush, as ``insert_subject_key``.
        statement = SQL(
            "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) "
            "INSERT INTO {table} (subject, key) "
            "SELECT u.subject, u.key FROM relaxed, unnest(%s::text[], %s::bytea[]) "
            "AS u(subject, key) ON CONFLICT DO NOTHING"
        ).format(table=self._table())
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(statement, ([s for s, _ in keys], [k for _, k in keys]))

    def destroy_subject_key(self, subject: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {table} (subject, key, erased_at) VALUES (%s, '', now()) "
                    "ON CONFLICT (subject) DO UPDATE "
                    "SET key = '', erased_at = COALESCE({table}.erased_at, now())"
                ).format(table=self._table()),
                (subject,),
            )

    def erased_subjects(self) -> list[str]:
        statement = SQL(
            "SELECT subject FROM {table} WHERE erased_at IS NOT NULL ORDER BY subject"
        ).format(table=self._table())
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement)
            return [str(row["subject"]) for row in curs.fetchall()]
