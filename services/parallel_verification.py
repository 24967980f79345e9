"""Verifying a long ledger on several cores: the log cut at seals, each stretch verified
by a process of its own, the reports put together.

A stretch that starts after a seal is verified exactly as ``ChainVerifier.verify_range``
verifies any range: the ledger chain recomputed from that seal's stored link, each
aggregate anchored on the stored hash of the version before its first event there. The
stretch before it checks that very seal's link and those very hashes, so the stretches
together check everything one pass would, and a clean ledger gives the same report.
(Where something is broken, each stretch reports what it finds: the first break is the
same, later ones may be reported from both sides of a cut.)

Hashing is CPU-bound Python, one core per process. The first stretch is verified in the
calling process while the others start (a new process costs about a second of imports),
and a ledger is cut only from ``PARALLEL_FROM`` events on.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from services.chain import ChainStore
from services.chain_report import VerificationReport
from services.integrity import ChainVerifier, verifiable_head
from services.settings import Settings

PARALLEL_FROM = 250_000
"""Positions from which a verification is spread over processes (below, one is faster)."""


def default_jobs() -> int:
    """Processes a whole-ledger verification uses: one per CPU, at most two (the reading
    database needs a core too)."""
    return max(1, min(2, os.cpu_count() or 1))


def verify_spread(
    settings: Settings,
    store: ChainStore,
    start: int = 1,
    stop: int | None = None,
    *,
    jobs: int | None = None,
) -> VerificationReport:
    """``ChainVerifier(store).verify_range(start, stop)``, spread over ``jobs`` processes
    (default ``default_jobs()``) when the range is long enough to gain from it."""
    jobs = default_jobs() if jobs is None else jobs
    upto = stop if stop is not None else verifiable_head(store)
    stretches = cut_at_seals(store, start, upto, jobs) if upto - start >= PARALLEL_FROM else []
    if len(stretches) < 2:
        return ChainVerifier(store).verify_range(start, upto)
    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    with ProcessPoolExecutor(len(stretches) - 1, mp_context=context) as pool:
        later = [
            pool.submit(_verify_stretch, settings.model_dump(), first, last)
            for first, last in stretches[1:]
        ]
        # The first stretch here, while the other processes start.
        first, last = stretches[0]
        parts = [ChainVerifier(store).verify_range(first, last)]
        parts += [future.result() for future in later]
    return merged(parts)


def cut_at_seals(store: ChainStore, start: int, upto: int, pieces: int) -> list[tuple[int, int]]:
    """``start`` .. ``upto`` as up to ``pieces`` stretches of about equal length, each
    but the first starting just after a seal."""
    cuts = []
    for piece in range(1, pieces):
        seal = store.last_seal(upto=start + (upto - start) * piece // pieces)
        if seal is not None and start <= seal.upto_position < upto:
            cuts.append(seal.upto_position)
    bounds = [start - 1, *sorted(set(cuts)), upto]
    return [(after + 1, last) for after, last in zip(bounds, bounds[1:], strict=False)]


def merged(parts: list[VerificationReport]) -> VerificationReport:
    """The reports of consecutive stretches as one report of the whole."""
    report = VerificationReport(sealed_upto=max(part.sealed_upto for part in parts))
    for part in parts:
        report.events += part.events
        report.breaks.extend(part.breaks)
        report.statuses.update(part.statuses)
        if report.first_position is None:
            report.first_position = part.first_position
        if part.last_position is not None:
            report.last_position = part.last_position
    report.ledger_hash = parts[-1].ledger_hash
    report.breaks.sort(key=lambda b: b.position)
    return report


def _verify_stretch(settings: dict[str, Any], start: int, stop: int) -> VerificationReport:
    """One stretch, in a process of its own with its own connection."""
    from services.bootstrap import build_ledger

    ledger = build_ledger(Settings(**settings))
    try:
        return ChainVerifier(ledger.recorder).verify_range(start, stop)  # type: ignore[arg-type]
    finally:
        ledger.close()
