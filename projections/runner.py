"""Feeding projections: read the ledger's notifications in batches, apply, record position.

One runner serves several projections. Each batch is read and decoded once; every
projection receives the events after its own position, and all rows plus the new
positions commit in one transaction, so a crash never applies an event twice or loses it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from projections.base import Projection, RecordedEvent
from projections.decoding import NotificationDecoder
from projections.parking import ensure_parked_table, park
from projections.positions import (
    POSITIONS_TABLE,
    SCHEMAS_TABLE,
    ProjectionLagError,
    advance_position,
    commit_without_waiting_for_disk,
    record_position,
    record_positions,
    stored_position,
    wait_for_position,
)
from projections.read_ahead import Batch, catch_up_reading_ahead, no_cyclic_garbage_collection
from projections.store import ReadStore, Transaction
from projections.worker import ProjectionWorker

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "POSITIONS_TABLE",
    "SCHEMAS_TABLE",
    "ProjectionLagError",
    "ProjectionRunner",
    "ProjectionWorker",
    "wait_for_position",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 2000
READ_AHEAD_FROM = 100_000
"""Events behind at which ``catch_up`` reads ahead in a thread."""
CATCH_UP_TRANSACTION_EVENTS = 200_000
"""Events (in whole batches) a projection applies in one transaction while catching up:
in time order, 200,000 took a quarter less time than 50,000 (deals written about once
instead of twice), for 30–40 MB more of pending rows (measured, docs/projections.md)."""
CATCH_UP_BATCH_SIZE = 10_000
"""Events per batch while reading ahead: fewer round trips and row loads per event."""


class ProjectionRunner:
    """Brings a set of projections up to date with the ledger, batch by batch."""

    def __init__(
        self,
        ledger: Any,
        database: ReadStore,
        projections: Sequence[Projection],
        batch_size: int = DEFAULT_BATCH_SIZE,
        read_ahead_from: int = READ_AHEAD_FROM,
        catch_up_batch_size: int = CATCH_UP_BATCH_SIZE,
        catch_up_transaction_events: int = CATCH_UP_TRANSACTION_EVENTS,
    ) -> None:
        self.ledger = ledger
        self.database = database
        self.projections = list(projections)
        self.batch_size = batch_size
        self.read_ahead_from = read_ahead_from
        self.catch_up_batch_size = catch_up_batch_size
        self._following = False
        """The last ``catch_up`` read less than a batch: the worker follows the head."""
        self.catch_up_transaction_events = catch_up_transaction_events
        self._decode = NotificationDecoder(ledger.mapper)
        named = [p.topics for p in self.projections]
        self.topics: tuple[str, ...] | None = (
            tuple(sorted({topic for topics in named if topics for topic in topics}))
            if named and all(topics is not None for topics in named)
            else None
        )
        """The topics read, when every projection names its own (else all)."""
        self._lock = threading.Lock()
        self._undecodable: dict[int, BaseException] = {}
        """Positions read that could not be decoded, and why: parked by every projection
        whose range they fall in."""
        self.ensure_tables()

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.projections]

    def ensure_tables(self) -> None:
        """Create what is missing. A projection whose tables a new version defines
        differently (its ``schema_fingerprint`` changed, or was never recorded: a version
        before fingerprints) is dropped and rebuilt from the first event, as
        ``salesledger rebuild`` would; its queries answer from the rebuild as it goes."""
        with self.database.transaction() as tx:
            if tx.dialect == "postgres":  # one process at a time (the API and workers)
                tx.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [SCHEMAS_TABLE])
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} "
                "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            )
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMAS_TABLE} "
                "(name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)"
            )
            ensure_parked_table(tx)
            rows = tx.execute(f"SELECT name, fingerprint FROM {SCHEMAS_TABLE}")
            recorded = {row["name"]: row["fingerprint"] for row in rows}
            for projection in self.projections:
                fingerprint = projection.schema_fingerprint(tx.dialect)
                if recorded.get(projection.name) != fingerprint:
                    if projection.name in recorded or stored_position(tx, projection.name):
                        log.warning("projection %s changed its tables: rebuilding", projection.name)
                    projection.drop_tables(tx)
                    record_position(tx, projection.name, 0)
                    tx.execute(
                        f"INSERT INTO {SCHEMAS_TABLE} (name, fingerprint) VALUES (%s, %s) "
                        "ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint",
                        [projection.name, fingerprint],
                    )
                projection.create_tables(tx)
                projection.create_indexes(tx)

    def positions(self) -> dict[str, int]:
        """Each projection's position: the last event it has applied (0 before any)."""
        with self.database.transaction() as tx:
            return self._positions(tx, lock=False)

    def _positions(self, tx: Transaction, *, lock: bool) -> dict[str, int]:
        suffix = " FOR UPDATE" if lock and tx.dialect == "postgres" else ""
        rows = tx.execute(f"SELECT name, position FROM {POSITIONS_TABLE}{suffix}")
        known = {row["name"]: int(row["position"]) for row in rows}
        return {name: known.get(name, 0) for name in self.names}

    def process_batch(self, positions: dict[str, int] | None = None) -> int:
        """Apply the next batch of events; the number of events read (0: up to date). A
        runner reading only its projections' topics moves past stretches of other events
        on the way (recording the positions) until it reads some or reaches the end.

        ``positions``: the projections' positions as the caller last saw them (read here
        if not given), kept current here: a caller applying batch after batch reads them
        once. (Applying checks them under lock, so one moved back by a rebuild is found.)"""
        with self._lock:
            if positions is None:
                positions = self.positions()
            while True:
                start = min(positions.values(), default=0)
                events, end = self._read(start)
                if end <= start:
                    return 0
                if not self._apply(events, end, positions):
                    positions.update(self.positions())  # a rebuild reset one: read from there
                elif events:
                    return len(events)

    def _read(self, start: int, limit: int | None = None) -> Batch:
        """The next batch after ``start`` (``limit`` events, default the batch size),
        decoded once; as plain rows when the recorder offers them; only the projections'
        topics when they all name theirs and the recorder can filter them."""
        limit = limit or self.batch_size
        recorder = self.ledger.recorder
        if self.topics is not None and hasattr(recorder, "select_topic_rows"):
            rows, end = recorder.select_topic_rows(start, limit, self.topics)
            return self._decode_rows(rows), end
        if hasattr(recorder, "select_notification_rows"):
            rows = recorder.select_notification_rows(start, limit)
            events = self._decode_rows(rows)
            return events, rows[-1][0] if rows else start
        else:
            notifications = recorder.select_notifications(start, limit, inclusive_of_start=False)
            events = [self._decode(n) for n in notifications]
        return events, events[-1].position if events else start

    def _decode_rows(self, rows: Sequence[Any]) -> list[RecordedEvent]:
        """``rows`` decoded; one that cannot be is left out and noted in
        ``_undecodable`` (so that every projection parks it)."""
        try:
            return self._decode.decode_rows(rows)
        except Exception:  # noqa: BLE001 - found row by row below
            events: list[RecordedEvent] = []
            for row in rows:
                try:
                    events.extend(self._decode.decode_rows([row]))
                except Exception as error:  # noqa: BLE001 - parked, with the error
                    self._undecodable[int(row[0])] = error
            return events

    def _park_undecodable(self, tx: Transaction, name: str, since: int, upto: int) -> None:
        for position, error in self._undecodable.items():
            if since < position <= upto:
                park(tx, name, position, error)

    def _apply(self, events: Sequence[RecordedEvent], end: int, positions: dict[str, int]) -> bool:
        """Apply ``events`` (read from ``min(positions)`` up to ``end``) and record the
        positions (``end``), in one transaction; ``positions`` is updated. False (nothing
        applied) if a projection's stored position moved back meanwhile (a rebuild): the
        caller must re-read.

        If the batch fails for any reason but the database being away, it is applied
        again event by event, and an event a projection cannot process is parked for
        that projection (``projections.parking``): the others, and the events after
        it, go on."""
        try:
            return self._apply_batch(events, end, positions, careful=False)
        except Exception as error:
            if self.database.is_transient(error):
                raise
            log.warning("a batch failed (%s); applying it event by event", error)
            return self._apply_batch(events, end, positions, careful=True)

    def _apply_batch(
        self,
        events: Sequence[RecordedEvent],
        end: int,
        positions: dict[str, int],
        *,
        careful: bool,
    ) -> bool:
        last = end
        with self.database.transaction() as tx:
            commit_without_waiting_for_disk(tx)
            current = self._positions(tx, lock=True)
            if any(current[name] < positions[name] for name in self.names):
                log.info("a projection was reset while reading; retrying the batch")
                return False
            moved: dict[str, int] = {}
            for projection in self.projections:
                since = current[projection.name]
                if since >= last:
                    continue
                if unapplied := _after(events, since):
                    if careful:
                        self._process_parking_failures(tx, projection, unapplied)
                    else:
                        projection.process(tx, unapplied)
                self._park_undecodable(tx, projection.name, since, last)
                moved[projection.name] = last
            record_positions(tx, moved)
        positions.update({name: max(current[name], last) for name in self.names})
        return True

    def _process_parking_failures(
        self, tx: Transaction, projection: Projection, events: Sequence[RecordedEvent]
    ) -> None:
        """Each event in a savepoint of its own; one that fails is parked."""
        for event in events:
            tx.execute("SAVEPOINT apply_one")
            try:
                projection.process(tx, [event])
            except Exception as error:
                if self.database.is_transient(error):
                    raise
                tx.execute("ROLLBACK TO SAVEPOINT apply_one")
                park(tx, projection.name, event.position, error)
            tx.execute("RELEASE SAVEPOINT apply_one")

    def apply_again(self, name: str, position: int) -> None:
        """Apply the event at ``position`` to projection ``name`` once more (a parked
        one, after an upgrade); raises what it raises if it still fails."""
        projection = next(p for p in self.projections if p.name == name)
        rows = self.ledger.recorder.select_notification_rows_at([position])
        events = self._decode.decode_rows(rows)
        with self.database.transaction() as tx:
            projection.process(tx, events)

    def catch_up(self) -> int:
        """Apply batches until no new event is readable; the number of events read.

        A long way behind (``read_ahead_from`` events or more: a cold start, a rebuild),
        a reader thread reads and decodes the next batches once, and every projection
        applies them in a thread of its own, in transactions of its own (its rows with its
        position), so that one projection's Python work overlaps the others' waits on the
        database. A projection replayed from its first event builds its secondary indexes
        at the end (``read_ahead.indexes_built_at_the_end``).
        """
        total = 0
        positions = self.positions()
        # Following the ledger (the last call read less than a batch), the head is not
        # asked for (a query of half a millisecond, each pass); a full batch ends that.
        last = 0 if self._following else self.ledger.recorder.max_notification_id() or 0
        if last - min(positions.values(), default=0) >= self.read_ahead_from:
            try:
                with self._lock, no_cyclic_garbage_collection():
                    total = catch_up_reading_ahead(self, last)
            except Exception as error:
                if self.database.is_transient(error):
                    raise
                log.warning("reading ahead failed (%s); going on batch by batch", error)
            positions = self.positions()
        while count := self.process_batch(positions):
            total += count
            if self._following and count >= self.batch_size:  # a burst: look at the head
                self._following = False
                return total + self.catch_up()
        self._following = total < self.batch_size
        return total

    def _apply_alone(
        self,
        projection: Projection,
        batch: Batch,
        expected: int,
        more: Callable[[], Batch | None] = lambda: None,
    ) -> tuple[int, int] | None:
        """Apply ``batch``, and the batches ``more`` has ready (up to
        ``catch_up_transaction_events`` events in all), past ``expected`` (the position
        this follower left ``projection`` at) and move its position from ``expected`` to
        their last, in one transaction of its own: the new position and the number of
        events. None, with nothing applied, if the stored position is no longer
        ``expected`` (a rebuild reset it, or another worker moved it on).

        Several batches to a transaction let a projection write a row changed by each
        of them once (``Projection.apply``): in a log in time order, most batches touch
        most open deals. ``more`` may wait for the reader only where no other follower
        can be waiting for this transaction (see ``read_ahead.catch_up_reading_ahead``); else it
        gives only the batches already read.

        The position is checked when it is moved, at the end (optimistically), not
        locked at the start: on a busy interpreter every round trip waits for the GIL,
        and the lock, the commit mode and the update cost three where this costs one.
        """
        pending = projection.begin()
        last, count = expected, 0
        try:
            with self.database.transaction() as tx:
                read: Batch | None = batch
                while read is not None:
                    events, end = read
                    if unapplied := _after(events, last):
                        projection.apply(tx, pending, unapplied)
                    self._park_undecodable(tx, projection.name, last, end)
                    last, count = end, count + len(events)
                    read = more() if count < self.catch_up_transaction_events else None
                projection.flush(tx, pending)
                if not advance_position(tx, projection.name, expected, last):
                    raise _PositionMoved
        except _PositionMoved:
            log.info("projection %s was reset or moved on while reading ahead", projection.name)
            return None
        return last, count

    def rebuild(self, names: Sequence[str] | None = None) -> int:
        """Drop the named projections' tables (default: all), recreate them, replay every event."""
        self.reset(names)
        return self.catch_up()

    def reset(self, names: Sequence[str] | None = None) -> None:
        """Drop the named projections' tables (default: all), recreate them empty, and
        set their positions to 0: the first half of ``rebuild``, for workers elsewhere
        to replay."""
        chosen = [p for p in self.projections if names is None or p.name in names]
        self._following = False
        with self._lock, self.database.transaction() as tx:
            for projection in chosen:
                projection.drop_tables(tx)
                projection.create_tables(tx)
                projection.create_indexes(tx)
                record_position(tx, projection.name, 0)


def _after(events: Sequence[RecordedEvent], position: int) -> Sequence[RecordedEvent]:
    """The events of a batch past ``position`` (a projection's own position)."""
    if not events or position < events[0].position:
        return events
    return [e for e in events if e.position > position]


class _PositionMoved(Exception):
    """A projection's stored position is not where its follower left it."""
