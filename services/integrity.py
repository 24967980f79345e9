"""Tamper evidence: sealing the notification log and verifying both chains.

The per-aggregate chain is computed when each event is appended (``services.persistence``).
The ledger-wide chain is computed here by a ``Sealer`` that follows the notification log
below the read horizon, where no gap can still fill, and records ``Seal`` rows; the
``ChainVerifier`` recomputes every hash from the stored bytes and compares it with the
stored hashes and the seals. The Merkle tree over the sealed events and its signed
heads, which auditors check without trusting the operator, are in ``services.transparency``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from uuid import UUID

from services.chain import GENESIS, ChainedRecord, ChainRow, ChainStore, Seal, ledger_link
from services.chain_report import (
    ChainBreak,
    LastHashes,
    VerificationReport,
    check_row,
    check_sealed,
)
from services.range_verification import RangeVerification, SealCursor

__all__ = [
    "CHAIN_CACHE", "READ_BATCH", "SEAL_BATCH", "ChainBreak", "ChainStore", "ChainVerifier",
    "SealCursor", "Sealer", "VerificationReport", "iter_records", "verifiable_head",
]

READ_BATCH = 10_000
SEAL_BATCH = 10_000
CHAIN_CACHE = 100_000
"""Aggregates whose last hash is kept between batches; others are re-read when met."""


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
        upto = verifiable_head(self.store) if stop is None else stop
        return RangeVerification(
            self.store, start, upto, batch_size=READ_BATCH, chain_cache=CHAIN_CACHE,
            keep_statuses=keep_statuses,
        ).run()

    def verify_aggregate(
        self, aggregate_id: UUID, records: Sequence[ChainedRecord] | None = None
    ) -> VerificationReport:
        """Verify one aggregate's chain and compare its events with the seals; ``records``:
        its rows, if the caller has just read them (``select_aggregate_chain``)."""
        if records is None:
            records = self.store.select_aggregate_chain(aggregate_id)
        report = VerificationReport()
        # Only the seals' hashes of this aggregate's positions, by index (not every seal).
        report.sealed_upto, sealed = self.store.select_sealed_hashes(
            [record.position for record in records]
        )
        last: LastHashes = {}
        for record in records:
            row = _row(record)
            computed = check_row(row, last, report)
            check_sealed(row, computed, sealed.get(record.position), report)
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


def verifiable_head(store: ChainStore) -> int:
    """The last position a verification of the whole ledger covers: the read horizon, or
    the last seal if it reaches further."""
    latest = store.last_seal()
    return max(store.horizon_position(), latest.upto_position if latest else 0)


def _row(record: ChainedRecord) -> ChainRow:
    return (record.position, record.originator_id.bytes, record.version,
            record.topic.encode("utf-8"), record.state, record.hash)
