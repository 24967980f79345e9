"""Catching up a long way behind: batches read and decoded once by a thread ahead of the
projections, each projection following them in a thread and transactions of its own.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from projections.base import Projection, RecordedEvent
from projections.store import ReadStore

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner

READ_AHEAD_BATCHES = 2
"""Batches read ahead per follower at most. (4 was measured too: 34.8 against 36.3 s
on average over six runs in ABBA order, but 0.24–0.29× against 0.29–0.31× in the
bench's runs, for 24 MB more at the peak: no clear gain, kept at 2.)"""

Batch = tuple[list[RecordedEvent], int]
"""Events read, and the position read up to: their last, or further when a runner that
reads only its projections' topics passed over events of others after them."""


class ReadAhead:
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


def catch_up_reading_ahead(runner: ProjectionRunner, last: int) -> int:
    """Each projection behind ``last`` follows the batches read ahead in its own
    thread (the others wait for ``catch_up``'s batches); the events every follower
    applied. Any follower stopping early (an error, a rebuild) stops them all;
    ``catch_up`` then goes on batch by batch."""
    positions = runner.positions()
    behind = [p for p in runner.projections if positions[p.name] < last]
    if not behind:
        return 0
    limit = max(runner.batch_size, runner.catch_up_batch_size)
    reader = ReadAhead(
        lambda start: runner._read(start, limit),
        min((positions[p.name] for p in behind), default=last),
        consumers=len(behind),
    )
    applied = [0] * len(behind)
    errors: list[BaseException] = []
    # A follower may wait for the reader inside its transaction only where nobody
    # can be waiting for that transaction: not on SQLite (one writer at a time), nor
    # with fewer connections than followers.
    may_wait = runner.database.connections_at_most > len(behind)

    def follow(index: int, projection: Projection) -> None:
        position = positions[projection.name]
        batches = reader.batches(index)
        more = (lambda: next(batches, None)) if may_wait else (lambda: reader.ready(index))
        try:
            with indexes_built_at_the_end(runner.database, projection, from_scratch=position == 0):
                for batch in batches:
                    reached = runner._apply_alone(projection, batch, position, more)
                    if reached is None:
                        reader.close()
                        return
                    position, count = reached
                    applied[index] += count
        except BaseException as error:  # noqa: BLE001 - raised again by the caller
            errors.append(error)
            reader.close()

    followers = [
        threading.Thread(target=follow, args=(index, projection), name=projection.name, daemon=True)
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
def indexes_built_at_the_end(
    database: ReadStore, projection: Projection, *, from_scratch: bool
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
    with database.transaction() as tx:
        projection.drop_indexes(tx)
    try:
        yield
    finally:
        with database.transaction() as tx:
            projection.create_indexes(tx)


@contextmanager
def no_cyclic_garbage_collection() -> Iterator[None]:
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
