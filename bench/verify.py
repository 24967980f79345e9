"""``salesledger verify`` against the least any verifier must do: read every row and hash it.

A PostgreSQL database is filled with synthetic deal events (``bench.projections``'s
generator, stored through the ledger's append path, so every event is chained) and sealed.
Then, alternating in fresh processes so that machine noise hits both alike:

- the baseline reads every stored event in position order, in batches of the verifier's
  size, with one plain indexed SELECT each, and takes SHA-256 of each row's state;
- the ledger runs what ``salesledger verify`` runs (both chains and the seals):
  ``verify_spread``, which from 250,000 positions on cuts the log at seals and verifies
  the stretches in two processes on a 2-core machine (``--jobs 1``: one process, as
  ``ChainVerifier.verify_range()``). The baseline stays one process.

It prints events/s of each, the ratio (target ≥ 0.6) and each process's peak RSS (the
verifier streams in batches, so it should not grow with the ledger).

    python -m bench.verify --events 1000000 --opportunities 100000 --rounds 3

Connection settings come from POSTGRES_* (``eval "$(scripts/postgres env)"``); the
database ``ledger_bench_verify`` is kept for ``--reuse`` (without it, it is filled anew).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import resource
import time
from typing import Any

import psycopg

from bench.harness import conninfo
from bench.projections import populate, populated_events
from services.bootstrap import build_ledger
from services.integrity import READ_BATCH, Sealer
from services.parallel_verification import PARALLEL_FROM, verify_spread
from services.settings import Settings

DBNAME = "ledger_bench_verify"


def _settings(dbname: str) -> Settings:
    return Settings(store="postgres", postgres_dbname=dbname)


def raw_read_and_hash(dbname: str) -> int:
    """Every stored event's state read in position order and hashed; how many."""
    count, after = 0, 0
    with psycopg.connect(conninfo(dbname)) as conn:
        while True:
            rows = conn.execute(
                "SELECT notification_id, state FROM salesledger_events "
                "WHERE notification_id > %s ORDER BY notification_id LIMIT %s",
                [after, READ_BATCH],
                prepare=True,
            ).fetchall()
            if not rows:
                return count
            for _, state in rows:
                hashlib.sha256(state).digest()
            count += len(rows)
            after = rows[-1][0]


def ledger_verify(dbname: str, jobs: int | None) -> int:
    """What ``salesledger verify`` does (spread over ``jobs`` processes on a long ledger,
    by default as the command spreads it)."""
    settings = _settings(dbname)
    ledger = build_ledger(settings)
    try:
        report = verify_spread(settings, ledger.recorder, jobs=jobs)  # type: ignore[arg-type]
        assert report.ok, report.first_break
        return report.events
    finally:
        ledger.close()


def _timed(kind: str, dbname: str, jobs: int | None, out: Any) -> None:
    started = time.perf_counter()
    events = raw_read_and_hash(dbname) if kind == "raw" else ledger_verify(dbname, jobs)
    elapsed = time.perf_counter() - started
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,  # the spread's processes
    )
    out.put((events, elapsed, peak / 1024))


def measure(kind: str, dbname: str, jobs: int | None = None) -> tuple[int, float, float]:
    """(events, seconds, peak RSS in MiB of the largest process) of one run in a fresh
    process."""
    out: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_timed, args=(kind, dbname, jobs, out))
    process.start()
    result: tuple[int, float, float] = out.get(timeout=3600)
    process.join()
    return result


def prepare(dbname: str, events: int, opportunities: int, *, reuse: bool = False) -> int:
    """The database filled (unless ``reuse`` and it holds events) and sealed; the sealed
    position. A fresh fill is vacuumed and analysed before anything is timed, so that
    neither side pays for setting the new rows' hint bits or races autovacuum."""
    existing = populated_events(dbname)
    if existing and reuse:
        print(f"reusing {existing:,} events in {dbname}")
    else:
        with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{dbname}"')
        started = time.perf_counter()
        written = populate(_settings(dbname), opportunities, events, order="time")
        print(f"stored {written:,} events in {time.perf_counter() - started:.0f} s")
    ledger = build_ledger(_settings(dbname))
    try:
        started = time.perf_counter()
        sealed = Sealer(ledger.recorder).seal()  # type: ignore[arg-type]
        print(f"sealed up to {sealed:,} in {time.perf_counter() - started:.1f} s")
    finally:
        ledger.close()
    with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return sealed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--opportunities", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dbname", default=DBNAME)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database's events if it has some"
    )
    parser.add_argument(
        "--jobs", type=int, default=None,
        help="verify's processes (default: as `salesledger verify` spreads the ledger: "
        f"one per CPU, at most 2, from {PARALLEL_FROM:,} positions on; 1: one process)",
    )
    args = parser.parse_args()
    prepare(args.dbname, args.events, args.opportunities, reuse=args.reuse)
    print(f"{'round':>5} {'raw ev/s':>10} {'verify ev/s':>12} {'ratio':>6} "
          f"{'raw MiB':>8} {'verify MiB':>10}")  # fmt: skip
    ratios = []
    for round_ in range(1, args.rounds + 1):
        order = ("raw", "verify") if round_ % 2 else ("verify", "raw")
        results = {kind: measure(kind, args.dbname, args.jobs) for kind in order}
        (raw_n, raw_s, raw_mb), (n, seconds, mb) = results["raw"], results["verify"]
        ratio = (n / seconds) / (raw_n / raw_s)
        ratios.append(ratio)
        print(f"{round_:>5} {raw_n / raw_s:>10,.0f} {n / seconds:>12,.0f} {ratio:>6.2f} "
              f"{raw_mb:>8.0f} {mb:>10.0f}")  # fmt: skip
    print(f"events verified: {n:,}; ratio min {min(ratios):.2f}, mean "
          f"{sum(ratios) / len(ratios):.2f} (target ≥ 0.6)")  # fmt: skip


if __name__ == "__main__":
    main()
