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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from services.chain import GENESIS, ChainedRecord, Seal, event_hash, ledger_link

READ_BATCH = 10_000
SEAL_BATCH = 10_000


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
        are anchored on the stored hash of the version before.
        """
        if stop is None:
            latest = self.store.last_seal()
            upto = max(self.store.horizon_position(), latest.upto_position if latest else 0)
        else:
            upto = stop
        anchor = self.store.last_seal(upto=start - 1)
        after = anchor.upto_position if anchor else 0
        link = anchor.ledger_hash if anchor else GENESIS
        seals = self.store.select_seals(after=after, upto=upto)
        sealed: dict[int, bytes] = {}
        seal_ends: dict[int, Seal] = {}
        for seal in seals:
            sealed.update(zip(seal.positions, seal.event_hashes, strict=True))
            seal_ends[seal.upto_position] = seal
        report = VerificationReport(sealed_upto=seals[-1].upto_position if seals else after)
        last: dict[UUID, tuple[int, bytes]] = {}
        seen: set[int] = set()
        previous_seal_end = after
        for batch in _batches(iter_records(self.store, after, upto), READ_BATCH):
            self._anchor(batch, last)
            for record in batch:
                in_range = record.position >= start
                seen.add(record.position)
                computed = self._check_event(record, last, report if in_range else None)
                link = ledger_link(link, record.position, computed)
                if in_range:
                    report.events += 1
                    if report.first_position is None:
                        report.first_position = record.position
                    report.last_position = record.position
                    self._check_sealed(record, computed, sealed, report)
                    if keep_statuses and record.position not in report.statuses:
                        report.statuses[record.position] = "ok"
                ending_seal = seal_ends.get(record.position)
                if ending_seal is not None:
                    if ending_seal.after_position != previous_seal_end:
                        report.breaks.append(
                            ChainBreak("seal chain broken", record.position, None, None,
                                       f"seal starts after {ending_seal.after_position}, "
                                       f"previous ended at {previous_seal_end}")
                        )
                    elif ending_seal.ledger_hash != link and not report.breaks:
                        report.breaks.append(
                            ChainBreak("ledger chain mismatch", record.position, None, None,
                                       "the recomputed ledger hash differs from the seal")
                        )
                    previous_seal_end = ending_seal.upto_position
        for position in sorted(set(sealed) - seen):
            if start <= position <= upto:
                report.breaks.append(
                    ChainBreak("missing event", position, None, None,
                               "a sealed event is no longer in the store")
                )
        report.ledger_hash = link.hex()
        report.breaks.sort(key=lambda b: b.position)
        if keep_statuses:
            for chain_break in report.breaks:
                report.statuses[chain_break.position] = chain_break.kind
        return report

    def verify_aggregate(self, aggregate_id: UUID) -> VerificationReport:
        """Verify one aggregate's chain and compare its events with the seals."""
        records = self.store.select_aggregate_chain(aggregate_id)
        report = VerificationReport()
        # Only the seals' hashes of this aggregate's positions, by index (not every seal).
        report.sealed_upto, sealed = self.store.select_sealed_hashes(
            [record.position for record in records]
        )
        last: dict[UUID, tuple[int, bytes]] = {}
        for record in records:
            computed = self._check_event(record, last, report)
            self._check_sealed(record, computed, sealed, report)
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

    def _anchor(self, batch: list[ChainedRecord], last: dict[UUID, tuple[int, bytes]]) -> None:
        first_seen: dict[UUID, int] = {}
        for record in batch:
            first_seen.setdefault(record.originator_id, record.version)
        needed = [
            (originator_id, version - 1)
            for originator_id, version in first_seen.items()
            if version > 1 and originator_id not in last
        ]
        for (originator_id, version), stored in self.store.select_hashes(needed).items():
            if originator_id not in last and stored is not None:
                last[originator_id] = (version, stored)

    @staticmethod
    def _check_event(
        record: ChainedRecord,
        last: dict[UUID, tuple[int, bytes]],
        report: VerificationReport | None,
    ) -> bytes:
        prior = last.get(record.originator_id)
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
        last[record.originator_id] = (record.version, computed)
        return computed

    @staticmethod
    def _check_sealed(
        record: ChainedRecord, computed: bytes, sealed: dict[int, bytes], report: VerificationReport
    ) -> None:
        if record.position > report.sealed_upto:
            return
        expected = sealed.get(record.position)
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


def _batches(records: Iterator[ChainedRecord], size: int) -> Iterator[list[ChainedRecord]]:
    batch: list[ChainedRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
