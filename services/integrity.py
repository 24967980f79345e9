"""Tamper evidence: sealing the notification log and verifying both chains.

The per-aggregate chain is computed when each event is appended (``services.persistence``).
The ledger-wide chain is computed here by a ``Sealer`` that follows the notification log
below the read horizon, where no gap can still fill, and records ``Seal`` rows; the
``ChainVerifier`` recomputes every hash from the stored bytes and compares it with the
stored hashes and the seals. The Merkle tree over the sealed events and its signed
heads, which auditors check without trusting the operator, are in ``services.transparency``.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol
from uuid import UUID

from services.chain import GENESIS, ChainedRecord, Seal, event_hash, ledger_link

READ_BATCH = 10_000
SEAL_BATCH = 10_000
CHAIN_CACHE = 100_000
LastHashes = dict[int, tuple[int, bytes]]
"""Each aggregate's last version and hash seen, by the integer of its id (hashing a
``UUID`` runs Python code; hashing its integer does not)."""
"""Aggregates whose last hash is kept between batches; others are re-read when met."""


class ChainStore(Protocol):
    """What the chains need from a recorder (both ledger recorders provide it)."""

    def horizon_position(self) -> int: ...

    def select_chained(self, after: int, upto: int, limit: int) -> list[ChainedRecord]: ...

    def select_aggregate_chain(self, originator_id: UUID) -> list[ChainedRecord]: ...

    def select_hashes(
        self, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], bytes | None]: ...

    def select_seals(self, after: int = 0, upto: int | None = None) -> list[Seal]: ...

    def last_seal(self, upto: int | None = None) -> Seal | None: ...

    def select_sealed_hashes(
        self, positions: Sequence[int]
    ) -> tuple[int, dict[int, bytes]]: ...

    def insert_seal(self, seal: Seal) -> bool: ...


def iter_records(store: ChainStore, after: int, upto: int) -> Iterator[ChainedRecord]:
    """Every stored event after ``after`` up to ``upto``, in global order, in batches."""
    while after < upto:
        batch = store.select_chained(after, upto, READ_BATCH)
        if not batch:
            return
        yield from batch
        after = batch[-1].position


# Sealing.


class Sealer:
    """Extends the ledger-wide chain over the notification log, one seal per batch."""

    def __init__(self, store: ChainStore, batch_size: int = SEAL_BATCH) -> None:
        self.store = store
        self.batch_size = batch_size

    def seal(self, upto: int | None = None) -> int:
        """Seal everything below the read horizon (or up to ``upto``); the sealed position."""
        horizon = self.store.horizon_position()
        target = horizon if upto is None else min(upto, horizon)
        while True:
            last = self.store.last_seal()
            after = last.upto_position if last else 0
            link = last.ledger_hash if last else GENESIS
            if after >= target:
                return after
            records = self.store.select_chained(after, target, self.batch_size)
            if not records:
                return after
            hashes = [r.hash or GENESIS for r in records]
            for record, hash_ in zip(records, hashes, strict=True):
                link = ledger_link(link, record.position, hash_)
            self.store.insert_seal(
                Seal(
                    after_position=after,
                    upto_position=records[-1].position,
                    positions=[r.position for r in records],
                    event_hashes=hashes,
                    ledger_hash=link,
                )
            )


# Verification.


@dataclass(frozen=True)
class ChainBreak:
    """The first place where the stored events disagree with their hashes or seals."""

    kind: str
    position: int
    aggregate_id: str | None
    version: int | None
    detail: str

    def __str__(self) -> str:
        where = f"position {self.position}"
        if self.aggregate_id is not None:
            where += f", aggregate {self.aggregate_id} version {self.version}"
        return f"{self.kind} at {where}: {self.detail}"


@dataclass
class VerificationReport:
    """What a verification checked and every break it found, earliest first."""

    events: int = 0
    first_position: int | None = None
    last_position: int | None = None
    sealed_upto: int = 0
    ledger_hash: str | None = None
    breaks: list[ChainBreak] = field(default_factory=list)
    statuses: dict[int, str] = field(default_factory=dict)
    """Per position: "ok" or the kind of the first break found there."""
    version_statuses: dict[int, str] = field(default_factory=dict)
    """Per version, when one aggregate was verified."""

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        return min(self.breaks, key=lambda b: b.position) if self.breaks else None


class ChainVerifier:
    """Recomputes every hash from the stored bytes and checks both chains and the seals."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store

    def verify_range(
        self, start: int = 1, stop: int | None = None, *, keep_statuses: bool = False
    ) -> VerificationReport:
        """Verify the events at positions ``start`` .. ``stop`` (default: the horizon).

        The ledger chain is recomputed from the seal before ``start`` (from the beginning
        when ``start`` is 1); aggregates whose first event in the range is not their first
        are anchored on the stored hash of the version before. Events and seals are read
        in step, a batch at a time, so memory stays bounded whatever the ledger's size.
        """
        if stop is None:
            latest = self.store.last_seal()
            upto = max(self.store.horizon_position(), latest.upto_position if latest else 0)
        else:
            upto = stop
        anchor = self.store.last_seal(upto=start - 1)
        after = anchor.upto_position if anchor else 0
        link = anchor.ledger_hash if anchor else GENESIS
        seals = SealCursor(self.store, after, upto)
        report = VerificationReport(sealed_upto=seals.sealed_upto)
        last: LastHashes = {}
        for batch in _batches(iter_records(self.store, after, upto), READ_BATCH):
            self._anchor(batch, last)
            for record in batch:
                in_range = record.position >= start
                self._report_missing(seals.skip_to(record.position), start, upto, report)
                expected = seals.hash_at(record.position)
                computed = self._check_event(record, last, report if in_range else None)
                link = ledger_link(link, record.position, computed)
                if in_range:
                    report.events += 1
                    if report.first_position is None:
                        report.first_position = record.position
                    report.last_position = record.position
                    self._check_sealed(record, computed, expected, report)
                    if keep_statuses and record.position not in report.statuses:
                        report.statuses[record.position] = "ok"
                self._check_seal_end(seals, record.position, link, report)
            if len(last) > CHAIN_CACHE:  # the least recently first-seen go (insertion order)
                for key in list(islice(last, len(last) - CHAIN_CACHE)):
                    del last[key]
        self._report_missing(seals.skip_to(upto + 1), start, upto, report)
        report.ledger_hash = link.hex()
        report.breaks.sort(key=lambda b: b.position)
        if keep_statuses:
            for chain_break in report.breaks:
                report.statuses[chain_break.position] = chain_break.kind
        return report

    @staticmethod
    def _report_missing(
        positions: Iterable[int], start: int, upto: int, report: VerificationReport
    ) -> None:
        for position in positions:
            if start <= position <= upto:
                report.breaks.append(
                    ChainBreak("missing event", position, None, None,
                               "a sealed event is no longer in the store")
                )

    @staticmethod
    def _check_seal_end(
        seals: SealCursor, position: int, link: bytes, report: VerificationReport
    ) -> None:
        ending_seal = seals.ending_at(position)
        if ending_seal is None:
            return
        if ending_seal.after_position != seals.previous_end:
            report.breaks.append(
                ChainBreak("seal chain broken", position, None, None,
                           f"seal starts after {ending_seal.after_position}, "
                           f"previous ended at {seals.previous_end}")
            )
        elif ending_seal.ledger_hash != link and not report.breaks:
            report.breaks.append(
                ChainBreak("ledger chain mismatch", position, None, None,
                           "the recomputed ledger hash differs from the seal")
            )
        seals.previous_end = ending_seal.upto_position

    def verify_aggregate(self, aggregate_id: UUID) -> VerificationReport:
        """Verify one aggregate's chain and compare its events with the seals."""
        records = self.store.select_aggregate_chain(aggregate_id)
        report = VerificationReport()
        # Only the seals' hashes of this aggregate's positions, by index (not every seal).
        report.sealed_upto, sealed = self.store.select_sealed_hashes(
            [record.position for record in records]
        )
        last: LastHashes = {}
        for record in records:
            computed = self._check_event(record, last, report)
            self._check_sealed(record, computed, sealed.get(record.position), report)
            report.statuses.setdefault(record.position, "ok")
            report.events += 1
            report.first_position = report.first_position or record.position
            report.last_position = record.position
        report.breaks.sort(key=lambda b: b.position)
        for chain_break in reversed(report.breaks):
            report.statuses[chain_break.position] = chain_break.kind
        for record in records:
            report.version_statuses[record.version] = report.statuses[record.position]
        return report

    def ledger_hash_at(self, position: int) -> tuple[bytes, int]:
        """The ledger link at ``position``, recomputed from the stored events from the
        start (trusting no seal), and how many events it covers."""
        report = self.verify_range(1, position)
        return bytes.fromhex(report.ledger_hash or GENESIS.hex()), report.events

    def _anchor(self, batch: list[ChainedRecord], last: LastHashes) -> None:
        first_seen: dict[int, tuple[UUID, int]] = {}
        for record in batch:
            key = record.originator_id.int
            if key not in first_seen:
                first_seen[key] = (record.originator_id, record.version)
        needed = [
            (originator_id, version - 1)
            for key, (originator_id, version) in first_seen.items()
            if version > 1 and key not in last
        ]
        for (originator_id, version), stored in self.store.select_hashes(needed).items():
            if originator_id.int not in last and stored is not None:
                last[originator_id.int] = (version, stored)

    @staticmethod
    def _check_event(
        record: ChainedRecord,
        last: LastHashes,
        report: VerificationReport | None,
    ) -> bytes:
        key = record.originator_id.int
        prior = last.get(key)
        previous_version, previous_hash = prior if prior else (0, GENESIS)
        computed = event_hash(
            previous_hash, record.originator_id, record.version, record.topic, record.state
        )
        if report is not None:
            problem = None
            if record.version != previous_version + 1:
                problem = (
                    "version out of order",
                    f"follows version {previous_version}"
                    + (f": versions {previous_version + 1}..{record.version - 1} are missing"
                       if record.version > previous_version + 1 else ""),
                )
            elif record.hash is None:
                problem = ("unchained event", "the event has no stored hash")
            elif not hmac.compare_digest(computed, record.hash):
                problem = ("hash mismatch", "the stored bytes do not match the stored hash")
            if problem is not None:
                report.breaks.append(
                    ChainBreak(problem[0], record.position, str(record.originator_id),
                               record.version, problem[1])
                )
        last[key] = (record.version, computed)
        return computed

    @staticmethod
    def _check_sealed(
        record: ChainedRecord, computed: bytes, expected: bytes | None, report: VerificationReport
    ) -> None:
        if record.position > report.sealed_upto:
            return
        if expected is None:
            report.breaks.append(
                ChainBreak("unsealed event", record.position, str(record.originator_id),
                           record.version, "an event appeared inside a sealed stretch")
            )
        elif not hmac.compare_digest(expected, computed):
            report.breaks.append(
                ChainBreak("differs from seal", record.position, str(record.originator_id),
                           record.version, "the event at this position is not the one sealed")
            )


class SealCursor:
    """The seals over positions ``after`` .. ``upto``, read a window at a time, in step
    with the events: the sealed hash at each position, the seal ending there, and the
    sealed positions that no event matched."""

    WINDOW = 100_000

    def __init__(self, store: ChainStore, after: int, upto: int) -> None:
        self.store = store
        self.upto = upto
        self.read_to = after
        self.previous_end = after
        containing = store.select_seals(after=upto - 1, upto=upto) if upto > after else []
        below = store.last_seal(upto=upto)
        self.sealed_upto = (
            containing[-1].upto_position if containing
            else max(after, below.upto_position if below else 0)
        )
        self.pending: deque[tuple[int, bytes]] = deque()
        self.ends: dict[int, Seal] = {}

    def _fill(self, position: int) -> None:
        while (not self.pending or self.pending[-1][0] < position) and self.read_to < min(
            position, self.sealed_upto
        ):
            seals = self.store.select_seals(after=self.read_to, upto=self.read_to + self.WINDOW)
            if not seals:
                self.read_to += self.WINDOW
                continue
            for seal in seals:
                self.pending.extend(zip(seal.positions, seal.event_hashes, strict=True))
                self.ends[seal.upto_position] = seal
            self.read_to = seals[-1].upto_position

    def skip_to(self, position: int) -> list[int]:
        """The sealed positions before ``position`` not yet matched (events missing)."""
        self._fill(position)
        skipped = []
        while self.pending and self.pending[0][0] < position:
            skipped.append(self.pending.popleft()[0])
        return skipped

    def hash_at(self, position: int) -> bytes | None:
        if self.pending and self.pending[0][0] == position:
            return self.pending.popleft()[1]
        return None

    def ending_at(self, position: int) -> Seal | None:
        return self.ends.pop(position, None)


def _batches(records: Iterator[ChainedRecord], size: int) -> Iterator[list[ChainedRecord]]:
    batch: list[ChainedRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
