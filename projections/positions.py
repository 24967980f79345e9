"""Where each projection is: its position table, how a position moves, and waiting for one."""

from __future__ import annotations

import time
from typing import Any

from projections.store import ReadStore, Transaction

POSITIONS_TABLE = "projection_positions"
SCHEMAS_TABLE = "projection_schemas"
"""Each projection's ``schema_fingerprint`` as its tables were last created."""


def advance_position(tx: Transaction, name: str, expected: int, position: int) -> bool:
    """Move ``name``'s stored position from ``expected`` (or from none) to
    ``position``; False if it was not ``expected``. On PostgreSQL, the transaction also
    commits without waiting for the disk (``commit_without_waiting_for_disk``)."""
    returned = (
        "set_config('synchronous_commit', 'off', true)" if tx.dialect == "postgres" else "position"
    )
    rows = tx.execute(
        f"INSERT INTO {POSITIONS_TABLE} (name, position) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position "
        f"WHERE {POSITIONS_TABLE}.position = %s RETURNING {returned}",
        [name, position, expected],
    )
    return bool(rows)


def stored_position(tx: Transaction, name: str) -> int:
    """``name``'s stored position (0 before any), locked until the transaction ends."""
    suffix = " FOR UPDATE" if tx.dialect == "postgres" else ""
    rows = tx.execute(f"SELECT position FROM {POSITIONS_TABLE} WHERE name = %s{suffix}", [name])
    return int(rows[0]["position"]) if rows else 0


def record_position(tx: Transaction, name: str, position: int) -> None:
    """Record that projection ``name`` has applied every event up to ``position``."""
    record_positions(tx, {name: position})


def record_positions(tx: Transaction, positions: dict[str, int]) -> None:
    """``record_position`` for several projections, in one statement."""
    if not positions:
        return
    rows = ", ".join(["(%s, %s)"] * len(positions))
    tx.execute(
        f"INSERT INTO {POSITIONS_TABLE} (name, position) VALUES {rows} "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        [value for item in positions.items() for value in item],
    )


def commit_without_waiting_for_disk(tx: Transaction) -> None:
    """On PostgreSQL, let this transaction's commit return before its WAL is flushed.

    Safe for projections: a server crash can lose only the last commits whole, rows and
    position together, and the worker then applies those events again. Saves a disk
    flush per batch.
    """
    if tx.dialect == "postgres":
        tx.execute("SET LOCAL synchronous_commit = off")


class ProjectionLagError(Exception):
    """A projection did not reach the requested position within the allowed wait."""

    def __init__(self, projection: str, position: int, reached: int, waited: float) -> None:
        super().__init__(
            f"projection {projection!r} reached position {reached}, not {position}, "
            f"within {waited:g} s; retry shortly"
        )
        self.projection = projection
        self.position = position
        self.reached = reached


def wait_for_position(
    database: ReadStore,
    projection: str,
    position: int,
    timeout: float,
    on_wait: Any = None,
) -> None:
    """Return once ``projection`` has applied ``position``; raise ProjectionLagError after
    ``timeout`` seconds. ``on_wait`` (e.g. a worker's ``wake``) is called while waiting."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        with database.transaction() as tx:
            rows = tx.execute(
                f"SELECT position FROM {POSITIONS_TABLE} WHERE name = %s", [projection]
            )
        reached = int(rows[0]["position"]) if rows else 0
        if reached >= position:
            return
        if time.monotonic() >= deadline:
            raise ProjectionLagError(projection, position, reached, timeout)
        if on_wait is not None:
            on_wait()
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
