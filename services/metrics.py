"""Prometheus metrics: what every process counts, and what a scrape reads from the database.

Counted in the process (and, under ``serve --workers N``, shared through the files in
``PROMETHEUS_MULTIPROC_DIR``): request latency per route, commands by type and outcome,
connection pool use. Read from the database at each scrape (``LedgerCollector``), so every
worker answers the same: the ledger's head, each projection's and each relay's position and
lag, the seal's position, lag and age, and the events parked by the dead-letter table.
"""

from __future__ import annotations

import glob
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from projections.parking import PARKED_TABLE
from services.database import Database, Transaction

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PARKED_EVENTS_TABLE = PARKED_TABLE
"""The dead-letter table the projections and the relay park events they could not
process in; counted per consumer once it exists (before, no value is shown)."""

PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's own metrics (without a multiprocess directory)."""

REQUEST_SECONDS = Histogram(
    "salesledger_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    registry=PROCESS_REGISTRY,
)
COMMANDS = Counter(
    "salesledger_commands",
    "Commands received, by command (the route's operation) and outcome.",
    ["command", "outcome"],
    registry=PROCESS_REGISTRY,
)
POOL_CONNECTIONS = Gauge(
    "salesledger_db_pool_connections",
    "PostgreSQL connections of the processes' pools, by pool and state "
    "(open, idle, waiting requests, max).",
    ["pool", "state"],
    registry=PROCESS_REGISTRY,
    multiprocess_mode="livesum",
)


def outcome_of(status: int) -> str:
    """A command's outcome from its HTTP status."""
    if status < 400:
        return "accepted"
    if status == 503:
        return "unavailable"
    return "refused" if status < 500 else "failed"


def record_pool(pool: str, stats: dict[str, int]) -> None:
    for state, value in stats.items():
        POOL_CONNECTIONS.labels(pool, state).set(value)


def prepare_multiprocess_directory() -> None:
    """For ``serve --workers N``: a directory the workers share their counts through
    (``PROMETHEUS_MULTIPROC_DIR``, made if unset), emptied of a previous run's files.
    Call before the workers import ``prometheus_client``."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        import tempfile

        directory = tempfile.mkdtemp(prefix="salesledger-metrics-")
        os.environ[MULTIPROC_ENV] = directory
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):
        stale.unlink()


def forget_this_process() -> None:
    """At a worker's orderly exit: drop its live gauges (pool use) from the shared files,
    so the sums cover only running processes. Its counters stay, as Prometheus expects."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _StartedProcessesCollector(multiprocess.MultiProcessCollector):
    """The workers' shared counts, read only from files a worker has finished creating.

    A worker that starts during a scrape creates its file empty and sizes it a moment
    later; prometheus_client reads such a file as a broken one (``struct.error``), and a
    worker's gauges file can vanish between listing and reading when it exits in order.
    Both are skipped: they hold nothing yet, or nothing any more."""

    def collect(self) -> Iterable[Metric]:
        for _ in range(3):
            files = [
                path for path in glob.glob(os.path.join(self._path, "*.db"))
                if _size(path) >= _HEADER_BYTES
            ]
            try:
                return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call, no-any-return]
            except (FileNotFoundError, struct.error):
                continue
        return []


_HEADER_BYTES = 8
"""An initialised multiprocess file starts with its used size and padding."""


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def exposition(ledger_collector: Collector) -> bytes:
    """The text a scrape gets: the processes' counts and the database's positions."""
    if os.environ.get(MULTIPROC_ENV):
        counted = CollectorRegistry()
        _StartedProcessesCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = PROCESS_REGISTRY
    read = CollectorRegistry(auto_describe=False)
    read.register(ledger_collector)
    return generate_latest(counted) + generate_latest(read)


class LedgerCollector(Collector):
    """Positions and lags read from the database at each scrape."""

    def __init__(self, head: Callable[[], int], database: Database) -> None:
        self._head = head
        self._database = database

    def collect(self) -> Iterator[Metric]:
        head = self._head()
        yield _gauge("salesledger_ledger_head_position", "The last committed position.", head)
        with self._database.transaction() as tx:
            tables = _existing(tx, ["projection_positions", "relay_positions", "ledger_seals",
                                    PARKED_EVENTS_TABLE])
            if "projection_positions" in tables:
                rows = tx.execute("SELECT name, position FROM projection_positions")
                yield from _positions("projection", "projection", rows, head)
            if "relay_positions" in tables:
                rows = tx.execute("SELECT relay_name AS name, position FROM relay_positions")
                yield from _positions("relay", "relay", rows, head)
            if "ledger_seals" in tables:
                yield from _seal(tx, head)
            if PARKED_EVENTS_TABLE in tables:
                rows = tx.execute(
                    f"SELECT consumer, count(*) AS n FROM {PARKED_EVENTS_TABLE} GROUP BY consumer"
                )
                parked = GaugeMetricFamily(
                    "salesledger_parked_events", "Events parked, not processed, per consumer.",
                    labels=["consumer"],
                )
                for row in rows:
                    parked.add_metric([str(row["consumer"])], int(row["n"]))
                yield parked


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _positions(
    kind: str, label: str, rows: Iterable[dict[str, Any]], head: int
) -> Iterator[Metric]:
    position = GaugeMetricFamily(
        f"salesledger_{kind}_position", f"The last event each {kind} applied.", labels=[label]
    )
    lag = GaugeMetricFamily(
        f"salesledger_{kind}_lag_events", f"Events each {kind} is behind the head.",
        labels=[label],
    )
    for row in rows:
        reached = int(row["position"])
        position.add_metric([str(row["name"])], reached)
        lag.add_metric([str(row["name"])], max(0, head - reached))
    yield position
    yield lag


def _seal(tx: Transaction, head: int) -> Iterator[Metric]:
    rows = tx.execute(
        "SELECT upto_position, sealed_at FROM ledger_seals ORDER BY upto_position DESC LIMIT 1"
    )
    sealed = int(rows[0]["upto_position"]) if rows else 0
    yield _gauge("salesledger_seal_position", "The last position sealed.", sealed)
    yield _gauge("salesledger_seal_lag_events", "Events not sealed yet.", max(0, head - sealed))
    if rows:
        at = rows[0]["sealed_at"]
        stamp = at.timestamp() if isinstance(at, datetime) else _parse_time(str(at))
        yield _gauge("salesledger_last_seal_age_seconds", "Seconds since the last seal.",
                     max(0.0, time.time() - stamp))


def _parse_time(text: str) -> float:
    parsed = datetime.fromisoformat(text.replace(" ", "T"))
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _existing(tx: Transaction, names: list[str]) -> set[str]:
    if tx.dialect == "postgres":
        rows = tx.execute(
            "SELECT relname AS name FROM pg_class WHERE relname = ANY(%s) "
            "AND relkind IN ('r', 'p', 'v') AND pg_table_is_visible(oid)",
            [names],
        )
    else:
        marks = ", ".join("%s" for _ in names)
        rows = tx.execute(
            f"SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            f"AND name IN ({marks})",
            names,
        )
    return {str(row["name"]) for row in rows}
