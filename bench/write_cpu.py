"""CPU per command, client and server, beside the raw baseline's CPU per insert.

Throughput on a shared 2-core machine swings with the neighbours' load; the CPU one
operation costs swings much less, and with every core busy (8 clients) it is what
decides throughput. Each side runs its clients as processes for ``--seconds``; every
client reports its own CPU over its measured loop, and the server's is read from
``/proc`` for every ``postgres`` process (so PostgreSQL must run on this machine, as
``scripts/postgres`` runs it).

    python -m bench.write_cpu --clients 8 --rounds 2

Connection settings come from POSTGRES_* (``eval "$(scripts/postgres env)"``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    START_TIMEOUT,
    Deal,
    fresh_database,
    gather,
    insert_rows,
    ledger_env,
    log_activities,
    prepare_deals,
)

TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 0.5
"""The server is measured from this long after the start to this long before the end,
while every client's connection is surely open (a backend's CPU goes with it)."""


def postgres_cpu_seconds() -> float:
    """User and system CPU of every running ``postgres`` process."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended
            continue
        if text[text.index("(") + 1 : text.rindex(")")].startswith("postgres"):
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


class _StartClock:
    """The start barrier, noting the client's CPU time as it opens."""

    def __init__(self, barrier: Any) -> None:
        self.barrier = barrier
        self.cpu_at_start = 0.0

    def wait(self, timeout: float) -> None:
        self.barrier.wait(timeout)
        self.cpu_at_start = time.process_time()


def _client(
    raw: bool, env: dict[str, str], dbname: str, deal: Deal, seconds: float, barrier: Any, out: Any
) -> None:
    start = _StartClock(barrier)
    if raw:
        count = insert_rows(dbname, seconds, start)
    else:
        from commands.ledger import SalesLedger

        ledger = SalesLedger(env=env)
        count = log_activities(ledger, deal, seconds, start)
    out.put((count, time.process_time() - start.cpu_at_start))


def measure(
    raw: bool, env: dict[str, str], dbname: str, deals: list[Deal], seconds: float
) -> tuple[float, float, float]:
    """(operations per second, client CPU µs per operation, server CPU µs per operation)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(deals) + 1)
    out: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(raw, env, dbname, deal, seconds, barrier, out))
        for deal in deals
    ]
    for p in procs:
        p.start()
    barrier.wait(START_TIMEOUT)
    time.sleep(SETTLE_SECONDS)
    server_before, started = postgres_cpu_seconds(), time.perf_counter()
    time.sleep(seconds - 2 * SETTLE_SECONDS)
    server_after, ended = postgres_cpu_seconds(), time.perf_counter()
    results = gather(procs, out, seconds + START_TIMEOUT)
    count = sum(n for n, _ in results)
    rate = count / seconds
    client = 1e6 * sum(cpu for _, cpu in results) / count
    server = 1e6 * (server_after - server_before) / (ended - started) / rate
    return rate, client, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with fresh_database("write_cpu") as dbname:
        env = ledger_env(dbname)
        deals = prepare_deals(env, args.clients)
        print(f"{args.clients} clients as processes, {args.rounds} rounds of {args.seconds:.0f} s")
        print(f"{'side':>6} {'ops/s':>7} {'client µs':>10} {'server µs':>10} {'total µs':>9}")
        totals: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for raw in (True, False):
                rate, client, server = measure(raw, env, dbname, deals, args.seconds)
                total = client + server
                totals[raw].append(total)
                side = "raw" if raw else "ledger"
                print(f"{side:>6} {rate:>7.0f} {client:>10.0f} {server:>10.0f} {total:>9.0f}")
        ratio = sum(totals[True]) / sum(totals[False])
        print(f"raw CPU per insert ÷ ledger CPU per command: {ratio:.2f}")


if __name__ == "__main__":
    main()
