"""Verifying a stretch of the notification log at about the speed of reading it.

Events are read a batch at a time as plain tuples (``ChainRow``: the id and topic as the
bytes the hash covers) and the seals beside them a window at a time, so memory stays
bounded whatever the ledger's size. Each batch is first checked in bulk: every event
hashes to its stored hash in version order, the seals hold exactly these positions with
exactly these hashes, and every seal ending in the batch links. Only a batch where any of
that fails is checked again event by event, from the state before it, by the checks of
``services.chain_report``, which say what is wrong and where. A clean batch therefore
yields the very report the event-by-event checks would.
"""

from __future__ import annotations

import hashlib
import queue
import struct
import threading
from collections.abc import Iterable, Iterator
from itertools import islice
from uuid import UUID

from projections.read_ahead import no_cyclic_garbage_collection
from services.chain import GENESIS, HASH_SIZE, ChainRow, ChainStore, Seal, ledger_link
from services.chain_report import (
    ChainBreak,
    LastHashes,
    VerificationReport,
    check_row,
    check_sealed,
)

_INT8 = struct.Struct(">q")
_VERSION_AND_TOPIC_LENGTH = struct.Struct(">qi")
READ_AHEAD_BATCHES = 2
"""Batches read ahead of the hashing at most, so memory stays bounded."""


class RowReader:
    """The events after ``after`` up to ``upto``, a batch at a time, read by a thread
    ahead of their consumer: the database's work and the wait for the network (which
    holds no GIL) overlap with the hashing. ``close`` stops the thread."""

    def __init__(self, store: ChainStore, after: int, upto: int, batch_size: int) -> None:
        self._batches: queue.Queue[list[ChainRow] | BaseException] = queue.Queue(
            READ_AHEAD_BATCHES
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(store, after, upto, batch_size), name="chain-reader",
            daemon=True,
        )
        self._thread.start()

    def _run(self, store: ChainStore, after: int, upto: int, batch_size: int) -> None:
        try:
            while after < upto and not self._stop.is_set():
                rows = store.select_chain_rows(after, upto, batch_size)
                self._put(rows)
                if not rows:
                    return
                after = rows[-1][0]
            self._put([])
        except BaseException as error:  # noqa: BLE001 - raised in the consumer
            self._put(error)

    def _put(self, item: list[ChainRow] | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[list[ChainRow]]:
        while True:
            item = self._batches.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class SealCursor:
    """The seals over positions ``after`` .. ``upto``, read a window at a time, in step
    with the events: the sealed hash at each position, the seal ending there, and the
    sealed positions that no event matched."""

    WINDOW = 100_000

    def __init__(self, store: ChainStore, after: int, upto: int) -> None:
        self.store = store
        self.read_to = after
        self.previous_end = after
        containing = store.select_seals(after=upto - 1, upto=upto) if upto > after else []
        below = store.last_seal(upto=upto)
        self.sealed_upto = (
            containing[-1].upto_position if containing
            else max(after, below.upto_position if below else 0)
        )
        self.positions: list[int] = []
        """Sealed positions read, in the seals' order; those from ``index`` are pending."""
        self.hashes = b""
        """Their sealed hashes, ``HASH_SIZE`` bytes each."""
        self.index = 0
        self.ends: dict[int, Seal] = {}

    def fill(self, position: int) -> None:
        """Read seals until a pending sealed position reaches ``position`` (or none is left)."""
        while (self.index >= len(self.positions) or self.positions[-1] < position) and (
            self.read_to < min(position, self.sealed_upto)
        ):
            seals = self.store.select_seals(after=self.read_to, upto=self.read_to + self.WINDOW)
            if not seals:
                self.read_to += self.WINDOW
                continue
            positions = self.positions[self.index :]
            hashes = [self.hashes[self.index * HASH_SIZE :]]
            for seal in seals:
                if len(seal.positions) != len(seal.event_hashes):
                    raise ValueError(f"seal ending at {seal.upto_position} is malformed")
                positions.extend(seal.positions)
                hashes.extend(seal.event_hashes)
                self.ends[seal.upto_position] = seal
            self.positions, self.hashes, self.index = positions, b"".join(hashes), 0
            self.read_to = seals[-1].upto_position

    def skip_to(self, position: int) -> list[int]:
        """The sealed positions before ``position`` not yet matched (events missing)."""
        self.fill(position)
        start = end = self.index
        while end < len(self.positions) and self.positions[end] < position:
            end += 1
        self.index = end
        return self.positions[start:end]

    def hash_at(self, position: int) -> bytes | None:
        index = self.index
        if index < len(self.positions) and self.positions[index] == position:
            self.index += 1
            return self.hashes[index * HASH_SIZE : (index + 1) * HASH_SIZE]
        return None

    def ending_at(self, position: int) -> Seal | None:
        return self.ends.pop(position, None)

    def matches(self, positions: list[int], hashes: bytes, beyond: int) -> bool:
        """Whether the next pending sealed positions are exactly ``positions`` with
        ``hashes``, and the one after them (if any) lies beyond ``beyond``."""
        index, count = self.index, len(positions)
        following = index + count
        return (
            self.positions[index:following] == positions
            and (following >= len(self.positions) or self.positions[following] > beyond)
            and self.hashes[index * HASH_SIZE : following * HASH_SIZE] == hashes
        )


class RangeVerification:
    """One verification of positions ``start`` .. ``upto``, from the seal ``anchor``
    (recomputing the ledger chain from it) or from the beginning."""

    def __init__(
        self, store: ChainStore, start: int, upto: int, *, batch_size: int,
        chain_cache: int, keep_statuses: bool,
    ) -> None:
        anchor = store.last_seal(upto=start - 1)
        self.store = store
        self.start, self.upto = start, upto
        self.after = anchor.upto_position if anchor else 0
        self.link = anchor.ledger_hash if anchor else GENESIS
        self.batch_size, self.chain_cache = batch_size, chain_cache
        self.keep_statuses = keep_statuses
        self.seals = SealCursor(store, self.after, upto)
        self.report = VerificationReport(sealed_upto=self.seals.sealed_upto)
        self.last: LastHashes = {}

    def run(self) -> VerificationReport:
        report = self.report
        reader = RowReader(self.store, self.after, self.upto, self.batch_size)
        try:
            # Each batch makes tens of thousands of short-lived tuples, freed by reference
            # counting; the cyclic collector would only keep walking the batches alive.
            with no_cyclic_garbage_collection():
                for rows in reader:
                    self._verify_batch(rows)
        finally:
            reader.close()
        self._report_missing(self.seals.skip_to(self.upto + 1))
        report.ledger_hash = self.link.hex()
        report.breaks.sort(key=lambda b: b.position)
        if self.keep_statuses:
            for chain_break in report.breaks:
                report.statuses[chain_break.position] = chain_break.kind
        return report

    def _verify_batch(self, rows: list[ChainRow]) -> None:
        self._anchor(rows)
        if not self._verify_clean(rows):
            self._verify_exact(rows)
        if len(self.last) > self.chain_cache:  # the least recently first-seen go
            for key in list(islice(self.last, len(self.last) - self.chain_cache)):
                del self.last[key]

    def _anchor(self, rows: list[ChainRow]) -> None:
        """The stored hash of the version before each aggregate's first event in the
        batch, when that is not its first and its last hash is not kept."""
        first_seen: dict[bytes, int] = {}
        for row in rows:
            first_seen.setdefault(row[1], row[2])
        needed = [
            (UUID(bytes=originator_id), version - 1)
            for originator_id, version in first_seen.items()
            if version > 1 and originator_id not in self.last
        ]
        for (originator_id, version), stored in self.store.select_hashes(needed).items():
            if originator_id.bytes not in self.last and stored is not None:
                self.last[originator_id.bytes] = (version, stored)

    def _verify_clean(self, rows: list[ChainRow]) -> bool:
        """The batch checked in bulk, and counted, if nothing in it is wrong; otherwise
        False, with nothing changed."""
        seals, last = self.seals, self.last
        first, final = rows[0][0], rows[-1][0]
        if first < self.start:
            return False
        seals.fill(final)
        ends = seals.ends
        sha256, pack_version, pack_position = (
            hashlib.sha256, _VERSION_AND_TOPIC_LENGTH.pack, _INT8.pack
        )
        seen: LastHashes = {}
        computed_hashes: list[bytes] = []
        links_at_ends: dict[int, bytes] = {}
        link = self.link
        for position, originator_id, version, topic, state, stored in rows:
            prior = seen.get(originator_id) or last.get(originator_id)
            previous_version, previous = prior if prior else (0, GENESIS)
            if version != previous_version + 1:
                return False
            # services.chain.row_event_hash, inline: this loop runs once per event.
            computed = sha256(
                b"".join((previous, originator_id, pack_version(version, len(topic)), topic, state))
            ).digest()
            if computed != stored:
                return False
            seen[originator_id] = (version, computed)
            computed_hashes.append(computed)
            link = sha256(b"".join((link, pack_position(position), computed))).digest()
            if position in ends:
                links_at_ends[position] = link
        positions = [row[0] for row in rows]
        sealed = [p for p in positions if p <= seals.sealed_upto]
        if not seals.matches(sealed, b"".join(computed_hashes[: len(sealed)]), final):
            return False
        ending = sorted(end for end in ends if end <= final)
        previous_end = seals.previous_end
        for end in ending:
            if ends[end].after_position != previous_end or links_at_ends.get(end) != (
                ends[end].ledger_hash
            ):
                return False
            previous_end = end
        for end in ending:
            del ends[end]
        seals.previous_end, seals.index = previous_end, seals.index + len(sealed)
        last.update(seen)
        self.link = link
        self._count(positions)
        return True

    def _count(self, positions: list[int]) -> None:
        report = self.report
        report.events += len(positions)
        if report.first_position is None:
            report.first_position = positions[0]
        report.last_position = positions[-1]
        if self.keep_statuses:
            report.statuses.update(dict.fromkeys(positions, "ok"))

    def _verify_exact(self, rows: list[ChainRow]) -> None:
        """The batch checked event by event, every break reported where it is."""
        seals, report = self.seals, self.report
        for row in rows:
            position = row[0]
            in_range = position >= self.start
            self._report_missing(seals.skip_to(position))
            expected = seals.hash_at(position)
            computed = check_row(row, self.last, report if in_range else None)
            self.link = ledger_link(self.link, position, computed)
            if in_range:
                report.events += 1
                if report.first_position is None:
                    report.first_position = position
                report.last_position = position
                check_sealed(row, computed, expected, report)
                if self.keep_statuses and position not in report.statuses:
                    report.statuses[position] = "ok"
            self._check_seal_end(position)

    def _report_missing(self, positions: Iterable[int]) -> None:
        for position in positions:
            if self.start <= position <= self.upto:
                self.report.breaks.append(
                    ChainBreak("missing event", position, None, None,
                               "a sealed event is no longer in the store")
                )

    def _check_seal_end(self, position: int) -> None:
        seals, report = self.seals, self.report
        ending_seal = seals.ending_at(position)
        if ending_seal is None:
            return
        if ending_seal.after_position != seals.previous_end:
            report.breaks.append(
                ChainBreak("seal chain broken", position, None, None,
                           f"seal starts after {ending_seal.after_position}, "
                           f"previous ended at {seals.previous_end}")
            )
        elif ending_seal.ledger_hash != self.link and not report.breaks:
            report.breaks.append(
                ChainBreak("ledger chain mismatch", position, None, None,
                           "the recomputed ledger hash differs from the seal")
            )
        seals.previous_end = ending_seal.upto_position
