"""Feeding projections: read the ledger's notifications in batches, apply, record position.

One runner serves several projections. Each batch is read and decoded once; every
projection receives the events after its own position, and all rows plus the new
positions commit in one transaction, so a crash never applies an event twice or loses it.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from projections.base import Projection, RecordedEvent
from projections.decoding import NotificationDecoder
from projections.parking import ensure_parked_table, park
from projections.store import ReadStore, Transaction

log = logging.getLogger(__name__)

POSITIONS_TABLE = "projection_positions"
SCHEMAS_TABLE = "projection_schemas"
"""Each projection's ``schema_fingerprint`` as its tables were last created."""
DEFAULT_BATCH_SIZE = 2000
READ_AHEAD_FROM = 100_000
"""Events behind at which ``catch_up`` reads ahead in a thread."""
READ_AHEAD_BATCHES = 2
"""Batches read ahead per follower at most. (4 was measured too: 34.8 against 36.3 s
on average over six runs in ABBA order, but 0.24–0.29× against 0.29–0.31× in the
bench's runs, for 24 MB more at the peak: no clear gain, kept at 2.)"""
CATCH_UP_TRANSACTION_EVENTS = 200_000
"""Events (in whole batches) a projection applies in one transaction while catching up:
in time order, 200,000 took a quarter less time than 50,000 (deals written about once
instead of twice), for 30–40 MB more of pending rows (measured, docs/projections.md)."""
CATCH_UP_BATCH_SIZE = 10_000
"""Events per batch while reading ahead: fewer round trips and row loads per event."""

Batch = tuple[list[RecordedEvent], int]
"""Events read, and the position read up to: their last, or further when a runner that
reads only its projections' topics passed over events of others after them."""


class _ReadAhead:
    """Batches read (and decoded) by a thread ahead of their consumers, each batch handed
    to every consumer, at most ``READ_AHEAD_BATCHES`` waiting per consumer so memory stays
    bounded; each consumer's stream ends where a read reaches no further. ``close`` stops
    everyone."""

    def __init__(self, read: Callable[[int], Batch], start: int, consumers: int = 1) -> None:
        self._read = read
        self._queues: list[queue.Queue[Batch | None | BaseException]] = [
            queue.Queue(READ_AHEAD_BATCHES) for _ in range(consumers)
        ]
        self._ended = [False] * consumers
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(start,), name="projection-reader", daemon=True
        )
        self._thread.start()

    def _run(self, position: int) -> None:
        try:
            while not self._stop.is_set():
                batch = self._read(position)
                reached = batch[1] > position
                for consumer in self._queues:
                    self._put(consumer, batch if reached else None)
                if not reached:
                    return
                position = batch[1]
        except BaseException as error:  # noqa: BLE001 - handed to the consumers, raised there
            for consumer in self._queues:
                self._put(consumer, error)

    def _put(
        self,
        consumer: queue.Queue[Batch | None | BaseException],
        item: Batch | None | BaseException,
    ) -> None:
        while not self._stop.is_set():
            try:
                consumer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def batches(self, consumer: int) -> Iterator[Batch]:
        """The batches for ``consumer``, until the end or ``close``."""
        while not self._stop.is_set() and not self._ended[consumer]:
            try:
                item = self._queues[consumer].get(timeout=0.1)
            except queue.Empty:
                continue
            batch = self._batch(consumer, item)
            if batch is None:
                return
            yield batch

    def ready(self, consumer: int) -> Batch | None:
        """``consumer``'s next batch if it is already read, else None (also at the end):
        for a consumer that must not wait for the reader (holding a transaction that
        another consumer may be waiting for)."""
        if self._ended[consumer]:
            return None
        try:
            item = self._queues[consumer].get_nowait()
        except queue.Empty:
            return None
        return self._batch(consumer, item)

    def _batch(self, consumer: int, item: Batch | None | BaseException) -> Batch | None:
        """The batch ``item`` from ``consumer``'s queue; None at the end; the reader's
        error raised."""
        if isinstance(item, BaseException):
            raise item
        if item is None:
            self._ended[consumer] = True
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


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
                    if projection.name in recorded or self._position(tx, projection.name):
                        log.warning("projection %s changed its tables: rebuilding", projection.name)
                    projection.drop_tables(tx)
                    self._record_position(tx, projection.name, 0)
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

    def process_batch(self) -> int:
        """Apply the next batch of events; the number of events read (0: up to date). A
        runner reading only its projections' topics moves past stretches of other events
        on the way (recording the positions) until it reads some or reaches the end."""
        with self._lock:
            positions = self.positions()
            while True:
                start = min(positions.values(), default=0)
                events, end = self._read(start)
                if end <= start:
                    return 0
                if not self._apply(events, end, positions):
                    positions = self.positions()  # a rebuild reset one: read from there
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

    def _apply(
        self, events: Sequence[RecordedEvent], end: int, positions: dict[str, int]
    ) -> bool:
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
            _commit_without_waiting_for_disk(tx)
            current = self._positions(tx, lock=True)
            if any(current[name] < positions[name] for name in self.names):
                log.info("a projection was reset while reading; retrying the batch")
                return False
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
                self._record_position(tx, projection.name, last)
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
        at the end (``_indexes_built_at_the_end``).
        """
        total = 0
        last = self.ledger.recorder.max_notification_id() or 0
        if last - min(self.positions().values(), default=0) >= self.read_ahead_from:
            try:
                with self._lock, _no_cyclic_garbage_collection():
                    total = self._catch_up_reading_ahead(last)
            except Exception as error:
                if self.database.is_transient(error):
                    raise
                log.warning("reading ahead failed (%s); going on batch by batch", error)
        while count := self.process_batch():
            total += count
        return total

    def _catch_up_reading_ahead(self, last: int) -> int:
        """Each projection behind ``last`` follows the batches read ahead in its own
        thread (the others wait for ``catch_up``'s batches); the events every follower
        applied. Any follower stopping early (an error, a rebuild) stops them all;
        ``catch_up`` then goes on batch by batch."""
        positions = self.positions()
        behind = [p for p in self.projections if positions[p.name] < last]
        if not behind:
            return 0
        limit = max(self.batch_size, self.catch_up_batch_size)
        reader = _ReadAhead(
            lambda start: self._read(start, limit),
            min((positions[p.name] for p in behind), default=last),
            consumers=len(behind),
        )
        applied = [0] * len(behind)
        errors: list[BaseException] = []
        # A follower may wait for the reader inside its transaction only where nobody
        # can be waiting for that transaction: not on SQLite (one writer at a time), nor
        # with fewer connections than followers.
        may_wait = self.database.connections_at_most > len(behind)

        def follow(index: int, projection: Projection) -> None:
            position = positions[projection.name]
            batches = reader.batches(index)
            more = (lambda: next(batches, None)) if may_wait else (lambda: reader.ready(index))
            try:
                with self._indexes_built_at_the_end(projection, from_scratch=position == 0):
                    for batch in batches:
                        reached = self._apply_alone(projection, batch, position, more)
                        if reached is None:
                            reader.close()
                            return
                        position, count = reached
                        applied[index] += count
            except BaseException as error:  # noqa: BLE001 - raised again by the caller
                errors.append(error)
                reader.close()

        followers = [
            threading.Thread(
                target=follow, args=(index, projection), name=projection.name, daemon=True
            )
            for index, projection in enumerate(behind)
        ]
        try:
            for follower in followers:
                follower.start()
            for follower in followers:
                follower.join()
        finally:  # also when interrupted: the followers stop after their current batch
            reader.close()
        if errors:
            raise errors[0]
        return min(applied, default=0)

    @contextmanager
    def _indexes_built_at_the_end(
        self, projection: Projection, *, from_scratch: bool
    ) -> Iterator[None]:
        """For a projection replayed from its first event (a cold start, a rebuild), its
        secondary indexes dropped meanwhile and built once at the end, also when it stops
        early, instead of maintained row by row: with the cores busy, their upkeep was
        the largest part of the server's work (measured, docs/projections.md). Queries
        meanwhile read the tables without them. Should the process die before the end,
        the next runner's ``ensure_tables`` builds them."""
        if not from_scratch:
            yield
            return
        with self.database.transaction() as tx:
            projection.drop_indexes(tx)
        try:
            yield
        finally:
            with self.database.transaction() as tx:
                projection.create_indexes(tx)

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
        can be waiting for this transaction (see ``_catch_up_reading_ahead``); else it
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
                if not self._advance_position(tx, projection.name, expected, last):
                    raise _PositionMoved
        except _PositionMoved:
            log.info("projection %s was reset or moved on while reading ahead", projection.name)
            return None
        return last, count

    @staticmethod
    def _advance_position(tx: Transaction, name: str, expected: int, position: int) -> bool:
        """Move ``name``'s stored position from ``expected`` (or from none) to
        ``position``; False if it was not ``expected``. On PostgreSQL, the transaction also
        commits without waiting for the disk (``_commit_without_waiting_for_disk``)."""
        returned = (
            "set_config('synchronous_commit', 'off', true)"
            if tx.dialect == "postgres"
            else "position"
        )
        rows = tx.execute(
            f"INSERT INTO {POSITIONS_TABLE} (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position "
            f"WHERE {POSITIONS_TABLE}.position = %s RETURNING {returned}",
            [name, position, expected],
        )
        return bool(rows)

    @staticmethod
    def _position(tx: Transaction, name: str) -> int:
        """``name``'s stored position (0 before any), locked until the transaction ends."""
        suffix = " FOR UPDATE" if tx.dialect == "postgres" else ""
        rows = tx.execute(f"SELECT position FROM {POSITIONS_TABLE} WHERE name = %s{suffix}", [name])
        return int(rows[0]["position"]) if rows else 0

    def rebuild(self, names: Sequence[str] | None = None) -> int:
        """Drop the named projections' tables (default: all), recreate them, replay every event."""
        self.reset(names)
        return self.catch_up()

    def reset(self, names: Sequence[str] | None = None) -> None:
        """Drop the named projections' tables (default: all), recreate them empty, and
        set their positions to 0: the first half of ``rebuild``, for workers elsewhere
        to replay."""
        chosen = [p for p in self.projections if names is None or p.name in names]
        with self._lock, self.database.transaction() as tx:
            for projection in chosen:
                projection.drop_tables(tx)
                projection.create_tables(tx)
                projection.create_indexes(tx)
                self._record_position(tx, projection.name, 0)

    @staticmethod
    def _record_position(tx: Transaction, name: str, position: int) -> None:
        tx.execute(
            f"INSERT INTO {POSITIONS_TABLE} (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            [name, position],
        )


def _after(events: Sequence[RecordedEvent], position: int) -> Sequence[RecordedEvent]:
    """The events of a batch past ``position`` (a projection's own position)."""
    if not events or position < events[0].position:
        return events
    return [e for e in events if e.position > position]


@contextmanager
def _no_cyclic_garbage_collection() -> Iterator[None]:
    """No automatic collection of cyclic garbage meanwhile (re-enabled afterwards, if it
    was enabled).

    A catch-up allocates millions of short-lived objects (decoded events, rows), freed by
    reference counting; they make no cycles (a million events left 410 objects of cyclic
    garbage, measured), but the collector keeps walking the batches and rows that stay
    alive: at the default threshold it took about half the decoding time, and with the
    young generation's threshold at 100,000 its fewer, larger collections still took
    1.2 s of a 35 s catch-up (measured).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _commit_without_waiting_for_disk(tx: Transaction) -> None:
    """On PostgreSQL, let this transaction's commit return before its WAL is flushed.

    Safe for projections: a server crash can lose only the last commits whole, rows and
    position together, and the worker then applies those events again. Saves a disk
    flush per batch.
    """
    if tx.dialect == "postgres":
        tx.execute("SET LOCAL synchronous_commit = off")


class _PositionMoved(Exception):
    """A projection's stored position is not where its follower left it."""


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


class ProjectionWorker:
    """Keeps a runner's projections current until stopped.

    On PostgreSQL it sleeps on LISTEN for the event store's NOTIFY and also wakes every
    ``poll_interval`` seconds (an event becomes readable only once every older writing
    transaction has finished, which sends no notification). On SQLite it polls, and
    in-process writers may call ``wake()``.
    """

    def __init__(
        self,
        runner: ProjectionRunner,
        channel: str,
        poll_interval: float = 0.5,
    ) -> None:
        self.runner = runner
        self.channel = channel
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Process events until ``stop()``; errors are logged and retried after a pause."""
        while not self._stop.is_set():
            try:
                if self.runner.catch_up() == 0:
                    self._idle()
            except Exception:
                log.exception("projection batch failed; retrying")
                self._stop.wait(self.poll_interval)

    def _idle(self) -> None:
        if self.runner.database.dialect == "postgres":
            self.runner.database.wait_for_notify(self.channel, self.poll_interval)
        else:
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="projection-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


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
