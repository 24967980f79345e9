"""What a verification of the chains found, and the checks of one event that find it.

The checks here are the definition of a break: the range verifier
(``services.range_verification``) and the one-aggregate verifier (``services.integrity``)
both report through them, so a break means the same whichever way it was found.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from uuid import UUID

from services.chain import GENESIS, ChainRow, row_event_hash

LastHashes = dict[bytes, tuple[int, bytes]]
"""Each aggregate's last version and hash seen, by the 16 bytes of its id."""


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


def check_row(row: ChainRow, last: LastHashes, report: VerificationReport | None) -> bytes:
    """The event's hash recomputed on its aggregate's last hash in ``last`` (which it
    then becomes); a break in ``report`` (unless None) if the version does not follow,
    the event has no hash, or its stored hash differs."""
    position, originator_id, version, topic, state, stored = row
    prior = last.get(originator_id)
    previous_version, previous_hash = prior if prior else (0, GENESIS)
    computed = row_event_hash(previous_hash, originator_id, version, topic, state)
    if report is not None:
        problem = None
        if version != previous_version + 1:
            problem = (
                "version out of order",
                f"follows version {previous_version}"
                + (f": versions {previous_version + 1}..{version - 1} are missing"
                   if version > previous_version + 1 else ""),
            )
        elif stored is None:
            problem = ("unchained event", "the event has no stored hash")
        elif not hmac.compare_digest(computed, stored):
            problem = ("hash mismatch", "the stored bytes do not match the stored hash")
        if problem is not None:
            report.breaks.append(
                ChainBreak(problem[0], position, str(UUID(bytes=originator_id)), version,
                           problem[1])
            )
    last[originator_id] = (version, computed)
    return computed


def check_sealed(
    row: ChainRow, computed: bytes, expected: bytes | None, report: VerificationReport
) -> None:
    """A break if the event lies in a sealed stretch and the seal holds another hash
    for its position, or none."""
    position, originator_id, version = row[0], row[1], row[2]
    if position > report.sealed_upto:
        return
    if expected is None:
        report.breaks.append(
            ChainBreak("unsealed event", position, str(UUID(bytes=originator_id)), version,
                       "an event appeared inside a sealed stretch")
        )
    elif not hmac.compare_digest(expected, computed):
        report.breaks.append(
            ChainBreak("differs from seal", position, str(UUID(bytes=originator_id)), version,
                       "the event at this position is not the one sealed")
        )
