"""Dead-letter parking: events a consumer (a projection, the relay) could not process.

Defence in depth for what is already stored (data an older version let through):
instead of retrying one event forever and stopping everything behind it, its consumer
records it here with the error, logs an alert and goes on. A parked event is never
forgotten: the consumer's answers are flagged incomplete while any of its events is
parked, and ``salesledger parked --retry`` (after an upgrade that can process it) applies
it again and removes it once it succeeds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from projections.store import Transaction

log = logging.getLogger("salesledger.parking")

PARKED_TABLE = "parked_events"
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class ParkedEvent:
    """One event a consumer could not process, and why."""

    consumer: str
    position: int
    error: str
    parked_at: str


def ensure_parked_table(tx: Transaction) -> None:
    """Create the dead-letter table if it is missing. Processes that start together (the
    relay, the projection workers) would race on PostgreSQL's catalogue (``CREATE TABLE IF
    NOT EXISTS`` is not safe against itself there): they take turns on a lock."""
    if tx.dialect == "postgres":
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [PARKED_TABLE])
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {PARKED_TABLE} (consumer TEXT NOT NULL, "
        "position BIGINT NOT NULL, error TEXT NOT NULL, parked_at TEXT NOT NULL, "
        "PRIMARY KEY (consumer, position))"
    )


def describe_error(error: BaseException) -> str:
    """The error as storable text (no NUL, no lone surrogate, bounded)."""
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def park(tx: Transaction, consumer: str, position: int, error: BaseException) -> None:
    """Record that ``consumer`` could not process the event at ``position``; alert."""
    reason = describe_error(error)
    log.error(
        "ALERT: %s parked the event at position %d and goes on without it: %s",
        consumer, position, reason,
    )
    tx.execute(
        f"INSERT INTO {PARKED_TABLE} (consumer, position, error, parked_at) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer, position) "
        "DO UPDATE SET error = excluded.error, parked_at = excluded.parked_at",
        [consumer, position, reason, datetime.now(UTC).isoformat()],
    )


def parked_events(tx: Transaction, consumer: str | None = None) -> list[ParkedEvent]:
    """The parked events (of ``consumer``), by consumer and position."""
    where, params = ("WHERE consumer = %s", [consumer]) if consumer is not None else ("", [])
    rows = tx.execute(
        f"SELECT consumer, position, error, parked_at FROM {PARKED_TABLE} {where} "
        "ORDER BY consumer, position",
        params,
    )
    return [
        ParkedEvent(str(r["consumer"]), int(r["position"]), str(r["error"]), str(r["parked_at"]))
        for r in rows
    ]


def resolve(tx: Transaction, consumer: str, position: int) -> None:
    """The parked event has been processed after all: forget it."""
    tx.execute(
        f"DELETE FROM {PARKED_TABLE} WHERE consumer = %s AND position = %s", [consumer, position]
    )
