"""A small portable SQL gateway for read models, positions and other side tables.

One API over PostgreSQL (psycopg 3 pool) and the embedded SQLite file, so that
projections and the relay write the same SQL on both. Write queries with ``%s``
placeholders; on SQLite they become ``?``. Both dialects support
``INSERT … ON CONFLICT … DO UPDATE`` and ``RETURNING``.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from projections.store import Row, Transaction, copy_escaped, copy_unescaped
from services.settings import Settings

__all__ = ["Database", "Row", "Transaction", "copy_escaped", "copy_unescaped"]

class _PostgresTransaction:
    dialect = "postgres"

    def __init__(self, conn: Any, temporary_tables: set[str]) -> None:
        self._conn = conn
        self.temporary_tables = temporary_tables

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cur:
                cur.executemany(sql, rows)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self._conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def copy_text(self, table: str, columns: Sequence[str], text: str) -> None:
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self._conn.cursor() as cur, cur.copy(statement) as copy:
            copy.write(text)


class _SQLiteTransaction:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.temporary_tables: set[str] = set()
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn.execute(sql.replace("%s", "?"), tuple(params))
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(sql.replace("%s", "?"), [tuple(r) for r in rows])

    def copy_text(self, table: str, columns: Sequence[str], text: str) -> None:
        lines = text.split("\n")[:-1]  # every line ends with one
        self.copy_rows(table, columns, [list(map(copy_unescaped, ln.split("\t"))) for ln in lines])

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        placeholders = ", ".join(["?"] * len(columns))
        self._conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
            ([_sqlite_value(value) for value in row] for row in rows),
        )


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


class Database:
    """Transactions on the ledger's database (the same one that holds the events)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dialect = settings.store
        self._pool: ConnectionPool[Any] | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_lock = threading.RLock()
        self._temporary_tables: weakref.WeakKeyDictionary[Any, set[str]] = (
            weakref.WeakKeyDictionary()
        )
        if self.dialect == "postgres":
            self._pool = ConnectionPool(
                settings.postgres_conninfo(),
                min_size=min(settings.postgres_pool_min, settings.read_pool_max),
                max_size=settings.read_pool_max,
                kwargs={"row_factory": dict_row, "autocommit": False},
                timeout=settings.postgres_pool_timeout,
                open=False,
            )
            self._open_lock = threading.Lock()
        else:
            self._sqlite = sqlite3.connect(
                settings.sqlite_path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=NORMAL")

    @property
    def connections_at_most(self) -> int:
        """How many transactions can be open at once (SQLite: one)."""
        return self._pool.max_size if self._pool is not None else 1

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic unit: everything inside commits together or not at all."""
        if self._pool is not None:
            with self._connection() as conn:
                temporary = self._temporary_tables.setdefault(conn, set())
                try:
                    with conn.transaction():
                        yield _PostgresTransaction(conn, temporary)
                except BaseException:
                    temporary.clear()  # the rollback may have undone their creation
                    raise
            return
        assert self._sqlite is not None
        with self._sqlite_lock:
            self._sqlite.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTransaction(self._sqlite)
            except BaseException:
                self._sqlite.execute("ROLLBACK")
                raise
            self._sqlite.execute("COMMIT")

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A connection of the pool, opened on first use (a process that never queries
        holds none); waiting longer than the pool's timeout raises ``PoolTimeout``, a
        ``psycopg.OperationalError``."""
        assert self._pool is not None
        if self._pool.closed:
            with self._open_lock:
                if self._pool.closed:
                    self._pool.open(wait=False)
        with self._pool.connection() as conn:
            yield conn

    def pool_stats(self) -> dict[str, int]:
        """The pool's size, idle connections, waiting requests and maximum (empty on
        SQLite)."""
        if self._pool is None:
            return {}
        stats = self._pool.get_stats()
        return {
            "open": stats.get("pool_size", 0),
            "idle": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "max": self._pool.max_size,
        }

    def wait_for_notify(self, channel: str, timeout: float) -> None:
        """Block until a NOTIFY on ``channel`` (PostgreSQL) or ``timeout`` seconds pass."""
        if self._pool is None:
            threading.Event().wait(timeout)
            return
        with self._connection() as conn:
            conn.autocommit = True
            try:
                conn.execute(f'LISTEN "{channel}"')
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    break
                conn.execute(f'UNLISTEN "{channel}"')
            finally:
                conn.autocommit = False

    def is_transient(self, error: BaseException) -> bool:
        """True for a failure of the database itself (away, a dropped connection, a
        deadlock, a lock timeout), worth retrying as it is; False for one the data
        caused."""
        transient = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
        return isinstance(error, (*transient, sqlite3.OperationalError))

    def close(self) -> None:
        if self._pool is not None and not self._pool.closed:
            self._pool.close()
        if self._sqlite is not None:
            self._sqlite.close()
