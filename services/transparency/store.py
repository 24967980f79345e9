"""Where the Merkle tree lives: its leaves, complete subtrees, signed heads, cosignatures
and signing keys, in the ledger's database (SQLite or PostgreSQL).

- ``ledger_tree_leaves``: leaf index → ledger position and event chain hash;
- ``ledger_tree_nodes``: every complete subtree of two or more leaves, by (level, index),
  written once when its last leaf arrives (so proofs at any size read O(log² n) rows);
- ``ledger_tree_heads``: a signed head per seal;
- ``ledger_head_cosignatures``: witnesses' cosignatures of heads;
- ``ledger_signing_keys``: the first key and every rotation, signed by the key before.

All of them only grow (``salesledger init-db`` makes them append-only).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from services.transparency.offline import Cosignature, KeyRotation, SignedTreeHead, leaf_hash

TREE_TABLES = (
    "ledger_tree_leaves", "ledger_tree_nodes", "ledger_tree_heads",
    "ledger_head_cosignatures", "ledger_signing_keys",
)


def create_statements(dialect: str, schema: str = "") -> list[str]:
    """The tables, for ``dialect`` "sqlite" or "postgres" (in ``schema``)."""
    blob, big = ("BLOB", "INTEGER") if dialect == "sqlite" else ("bytea", "bigint")
    prefix = f'"{schema}".' if schema else ""
    return [statement.replace("EXISTS ledger_", f"EXISTS {prefix}ledger_") for statement in [
        f"CREATE TABLE IF NOT EXISTS ledger_tree_leaves (leaf_index {big} PRIMARY KEY, "
        f"position {big} NOT NULL UNIQUE, event_hash {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS ledger_tree_nodes (level integer NOT NULL, "
        f"node_index {big} NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, node_index))",
        f"CREATE TABLE IF NOT EXISTS ledger_tree_heads (tree_size {big} PRIMARY KEY, "
        f"root text NOT NULL, timestamp_ms {big} NOT NULL, last_position {big} NOT NULL, "
        "key_id text NOT NULL, signature text NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS ledger_head_cosignatures (tree_size {big} NOT NULL, "
        f"witness_key_id text NOT NULL, timestamp_ms {big} NOT NULL, signature text NOT NULL, "
        "PRIMARY KEY (tree_size, witness_key_id))",
        f"CREATE TABLE IF NOT EXISTS ledger_signing_keys (new_key_id text PRIMARY KEY, "
        f"previous_key_id text NOT NULL, new_public_key text NOT NULL, "
        f"timestamp_ms {big} NOT NULL, signature text NOT NULL)",
    ]]


class TreeConflictError(Exception):
    """Another sealer extended the tree first; reload and try again."""


class TreeStore(Protocol):
    """What the tree sealer, the proofs and the API need from the database."""

    def tree_size(self) -> tuple[int, int]: ...

    def select_nodes(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...

    def append(
        self,
        leaves: Sequence[tuple[int, int, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        head: SignedTreeHead,
    ) -> None: ...

    def latest_head(self) -> SignedTreeHead | None: ...

    def head(self, tree_size: int) -> SignedTreeHead | None: ...

    def heads(self, after_size: int, limit: int) -> list[SignedTreeHead]: ...

    def leaves_at(self, positions: Sequence[int]) -> dict[int, tuple[int, bytes]]: ...

    def leaves_from(self, leaf_index: int, limit: int) -> list[tuple[int, int, bytes]]: ...

    def insert_cosignature(self, tree_size: int, cosignature: Cosignature) -> bool: ...

    def cosignatures(self, tree_size: int) -> list[Cosignature]: ...

    def insert_key(self, rotation: KeyRotation) -> bool: ...

    def signing_keys(self) -> list[KeyRotation]: ...


_HEAD_COLUMNS = "tree_size, root, timestamp_ms, last_position, key_id, signature"
_KEY_COLUMNS = "previous_key_id, new_key_id, new_public_key, timestamp_ms, signature"


class SQLTreeStore:
    """The tree tables through a DB-API connection source; ``SQLiteTreeStore`` and
    ``PostgresTreeStore`` supply connections, placeholders and the conflict error."""

    placeholder = "?"
    conflict_errors: tuple[type[Exception], ...] = ()

    @contextmanager
    def cursor(self, *, commit: bool) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _q(self, statement: str) -> str:
        return statement.replace("?", self.placeholder)

    def tree_size(self) -> tuple[int, int]:
        """(number of leaves, the position of the last one) — (0, 0) for the empty tree."""
        with self.cursor(commit=False) as cursor:
            cursor.execute(
                "SELECT leaf_index, position FROM ledger_tree_leaves "
                "ORDER BY leaf_index DESC LIMIT 1"
            )
            row = cursor.fetchone()
        return (int(row[0]) + 1, int(row[1])) if row else (0, 0)

    def select_nodes(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of complete subtrees (level 0: leaf hashes)."""
        found: dict[tuple[int, int], bytes] = {}
        leaves = sorted({index for level, index in nodes if level == 0})
        inner = sorted({(level, index) for level, index in nodes if level > 0})
        with self.cursor(commit=False) as cursor:
            for chunk in _chunks(leaves, 500):
                cursor.execute(self._q(
                    "SELECT leaf_index, event_hash FROM ledger_tree_leaves WHERE leaf_index IN ("
                    + ",".join("?" * len(chunk)) + ")"), tuple(chunk))
                found.update({(0, int(r[0])): leaf_hash(bytes(r[1])) for r in cursor.fetchall()})
            for chunk in _chunks(inner, 250):
                where = " OR ".join("(level = ? AND node_index = ?)" for _ in chunk)
                cursor.execute(
                    self._q(f"SELECT level, node_index, hash FROM ledger_tree_nodes WHERE {where}"),
                    tuple(value for node in chunk for value in node),
                )
                found.update({(int(r[0]), int(r[1])): bytes(r[2]) for r in cursor.fetchall()})
        return found

    def append(
        self,
        leaves: Sequence[tuple[int, int, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        head: SignedTreeHead,
    ) -> None:
        """Add leaves (index, position, event hash), subtrees and the head, all or nothing;
        ``TreeConflictError`` if another sealer added any of them first."""
        try:
            with self.cursor(commit=True) as cursor:
                cursor.executemany(self._q(
                    "INSERT INTO ledger_tree_leaves (leaf_index, position, event_hash) "
                    "VALUES (?, ?, ?)"), list(leaves))
                if nodes:
                    cursor.executemany(self._q(
                        "INSERT INTO ledger_tree_nodes (level, node_index, hash) VALUES (?, ?, ?)"
                    ), list(nodes))
                cursor.execute(self._q(
                    f"INSERT INTO ledger_tree_heads ({_HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
                    (head.tree_size, head.root, head.timestamp_ms, head.last_position,
                     head.key_id, head.signature))
        except self.conflict_errors as error:
            raise TreeConflictError(str(error)) from None

    def latest_head(self) -> SignedTreeHead | None:
        with self.cursor(commit=False) as cursor:
            cursor.execute(
                f"SELECT {_HEAD_COLUMNS} FROM ledger_tree_heads ORDER BY tree_size DESC LIMIT 1"
            )
            row = cursor.fetchone()
        return _head(row) if row else None

    def head(self, tree_size: int) -> SignedTreeHead | None:
        with self.cursor(commit=False) as cursor:
            cursor.execute(self._q(
                f"SELECT {_HEAD_COLUMNS} FROM ledger_tree_heads WHERE tree_size = ?"), (tree_size,))
            row = cursor.fetchone()
        return _head(row) if row else None

    def heads(self, after_size: int, limit: int) -> list[SignedTreeHead]:
        with self.cursor(commit=False) as cursor:
            cursor.execute(self._q(
                f"SELECT {_HEAD_COLUMNS} FROM ledger_tree_heads WHERE tree_size > ? "
                "ORDER BY tree_size LIMIT ?"), (after_size, limit))
            return [_head(row) for row in cursor.fetchall()]

    def leaves_at(self, positions: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """position → (leaf index, event hash), for the positions in the tree."""
        found: dict[int, tuple[int, bytes]] = {}
        with self.cursor(commit=False) as cursor:
            for chunk in _chunks(sorted(set(positions)), 500):
                cursor.execute(self._q(
                    "SELECT position, leaf_index, event_hash FROM ledger_tree_leaves "
                    "WHERE position IN (" + ",".join("?" * len(chunk)) + ")"), tuple(chunk))
                found.update({int(r[0]): (int(r[1]), bytes(r[2])) for r in cursor.fetchall()})
        return found

    def leaves_from(self, leaf_index: int, limit: int) -> list[tuple[int, int, bytes]]:
        """(leaf index, position, event hash) from ``leaf_index`` on, in order."""
        with self.cursor(commit=False) as cursor:
            cursor.execute(self._q(
                "SELECT leaf_index, position, event_hash FROM ledger_tree_leaves "
                "WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?"), (leaf_index, limit))
            return [(int(r[0]), int(r[1]), bytes(r[2])) for r in cursor.fetchall()]

    def insert_cosignature(self, tree_size: int, cosignature: Cosignature) -> bool:
        try:
            with self.cursor(commit=True) as cursor:
                cursor.execute(self._q(
                    "INSERT INTO ledger_head_cosignatures "
                    "(tree_size, witness_key_id, timestamp_ms, signature) VALUES (?, ?, ?, ?)"),
                    (tree_size, cosignature.witness_key_id, cosignature.timestamp_ms,
                     cosignature.signature))
        except self.conflict_errors:
            return False
        return True

    def cosignatures(self, tree_size: int) -> list[Cosignature]:
        with self.cursor(commit=False) as cursor:
            cursor.execute(self._q(
                "SELECT witness_key_id, timestamp_ms, signature FROM ledger_head_cosignatures "
                "WHERE tree_size = ? ORDER BY witness_key_id"), (tree_size,))
            return [Cosignature(str(r[0]), int(r[1]), str(r[2])) for r in cursor.fetchall()]

    def insert_key(self, rotation: KeyRotation) -> bool:
        """Record the first key (no previous key) or a rotation; False if already known."""
        try:
            with self.cursor(commit=True) as cursor:
                cursor.execute(self._q(
                    f"INSERT INTO ledger_signing_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?)"),
                    (rotation.previous_key_id, rotation.new_key_id, rotation.new_public_key,
                     rotation.timestamp_ms, rotation.signature))
        except self.conflict_errors:
            return False
        return True

    def signing_keys(self) -> list[KeyRotation]:
        """The first key, then every rotation, oldest first."""
        with self.cursor(commit=False) as cursor:
            cursor.execute(
                f"SELECT {_KEY_COLUMNS} FROM ledger_signing_keys ORDER BY timestamp_ms, new_key_id"
            )
            return [KeyRotation(str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]))
                    for r in cursor.fetchall()]


def _head(row: Sequence[Any]) -> SignedTreeHead:
    return SignedTreeHead(int(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]),
                          str(row[5]))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SQLiteTreeStore(SQLTreeStore):
    """The tree tables in the ledger's SQLite file (through its datastore)."""

    def __init__(self, datastore: Any) -> None:
        import sqlite3

        self.datastore = datastore
        self.conflict_errors = (sqlite3.IntegrityError,)

    @contextmanager
    def cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor


class PostgresTreeStore(SQLTreeStore):
    """The tree tables in the ledger's PostgreSQL schema (through its datastore's pool)."""

    placeholder = "%s"

    def __init__(self, datastore: Any) -> None:
        import psycopg

        self.datastore = datastore
        self.conflict_errors = (psycopg.errors.UniqueViolation,)

    @contextmanager
    def cursor(self, *, commit: bool) -> Iterator[Any]:
        from psycopg.rows import tuple_row

        with (
            self.datastore.get_connection() as conn,
            conn.transaction(force_rollback=not commit),
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(f'SET LOCAL search_path TO "{self.datastore.schema}"')
            yield cursor


def tree_store_for(recorder: Any) -> TreeStore:
    """The tree store in the same database as ``recorder``."""
    datastore = recorder.datastore
    if type(datastore).__module__.startswith("eventsourcing.postgres"):
        return PostgresTreeStore(datastore)
    return SQLiteTreeStore(datastore)
