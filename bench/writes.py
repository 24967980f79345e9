"""Command throughput through the ledger on PostgreSQL, beside a raw psycopg baseline.

Both sides run in the same process pool and the same run, so the ratio holds on a noisy
shared machine. The baseline is one single-row INSERT transaction per command; the ledger
side runs a real command (log an activity on the client's own deal: load the
organisation and the deal, decide, append one event with its hash in one transaction).

    python -m bench.writes --seconds 10 --clients 1 8

Connection settings come from POSTGRES_* (see README). Prints events/s and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import threading
import time
import uuid
from datetime import date
from decimal import Decimal

import psycopg
from psycopg_pool import ConnectionPool

from aggregates.errors import RuleViolationError
from aggregates.organisation import Role
from services.bootstrap import build_ledger
from services.settings import Settings


def _settings() -> Settings:
    return Settings(store="postgres")


def _conninfo(settings: Settings) -> str:
    return (
        f"host={settings.postgres_host} port={settings.postgres_port} "
        f"user={settings.postgres_user} password={settings.postgres_password} "
        f"dbname={settings.postgres_dbname}"
    )


def _raw_client(seconds: float, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    settings = _settings()
    payload = os.urandom(200)
    with psycopg.connect(_conninfo(settings), autocommit=True) as conn:
        barrier.wait()
        count, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            conn.execute(
                "INSERT INTO bench_raw (id, payload) VALUES (%s, %s)",
                (uuid.uuid4(), payload),
                prepare=True,
            )
            count += 1
    out.put(count)


def _ledger_client(
    opportunity_id: str,
    actor: str,
    seconds: float,
    barrier: mp.synchronize.Barrier,
    out: mp.Queue,  # type: ignore[type-arg]
) -> None:
    ledger = build_ledger(_settings())
    ledger.log_opportunity_activity(opportunity_id, "call", "warm-up", actor=actor)
    barrier.wait()
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        ledger.log_opportunity_activity(opportunity_id, "call", "followed up", actor=actor)
        count += 1
    out.put(count)


def _run_threads(kind: str, clients: list[tuple[str, str]], seconds: float) -> float:
    """Clients as threads of one process sharing one application (as in the API server)."""
    settings = _settings()
    barrier = threading.Barrier(len(clients))
    counts: list[int] = []
    if kind == "raw":
        pool = ConnectionPool(
            _conninfo(settings),
            min_size=len(clients),
            max_size=len(clients),
            kwargs={"autocommit": True},
        )
        payload = os.urandom(200)

        def work(_: tuple[str, str]) -> None:
            with pool.connection() as conn:
                barrier.wait()
                count, deadline = 0, time.perf_counter() + seconds
                while time.perf_counter() < deadline:
                    conn.execute(
                        "INSERT INTO bench_raw (id, payload) VALUES (%s, %s)",
                        (uuid.uuid4(), payload),
                        prepare=True,
                    )
                    count += 1
            counts.append(count)
    else:
        ledger = build_ledger(settings)
        for deal, actor in clients:
            ledger.log_opportunity_activity(deal, "call", "warm-up", actor=actor)

        def work(client: tuple[str, str]) -> None:
            deal, actor = client
            barrier.wait()
            count, deadline = 0, time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                ledger.log_opportunity_activity(deal, "call", "followed up", actor=actor)
                count += 1
            counts.append(count)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def _run(target: object, args_per_client: list[tuple[object, ...]], seconds: float) -> float:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args_per_client))
    out: mp.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(*args, seconds, barrier, out))  # type: ignore[arg-type]
        for args in args_per_client
    ]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def _prepare(clients: int) -> list[tuple[str, str]]:
    """An organisation with one rep per client, each with one open deal."""
    ledger = build_ledger(_settings())
    with contextlib.suppress(RuleViolationError):  # set up by an earlier run
        ledger.set_up_organisation("Bench Co", "admin", "Admin")
    deals = []
    for n in range(clients):
        rep = f"bench-rep-{uuid.uuid4().hex[:8]}"
        ledger.add_person(rep, rep, Role.SALES_REP, None, actor="admin")
        customer = ledger.register_customer(name=f"Bench customer {rep}", source="bench", actor=rep)
        deal = ledger.open_opportunity(
            customer_id=customer.aggregate_id,
            owner_id=rep,
            title=f"deal {n}",
            source="bench",
            amount=Decimal("1000"),
            expected_close=date(2027, 1, 1),
            product="p",
            region="r",
            actor=rep,
        )
        deals.append((deal.aggregate_id, rep))
    ledger.close()
    return deals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--mode",
        choices=["processes", "threads"],
        default="processes",
        help="clients as separate processes, or as threads sharing one application",
    )
    args = parser.parse_args()
    settings = _settings()
    with psycopg.connect(_conninfo(settings), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_raw (id uuid PRIMARY KEY, payload bytea, "
            "created timestamptz DEFAULT now())"
        )
    print(f"{'clients':>7} {'raw insert tx/s':>16} {'ledger commands/s':>18} {'ratio':>6}")
    for clients in args.clients:
        deals = _prepare(clients)
        if args.mode == "threads":
            raw = _run_threads("raw", deals, args.seconds)
            ledger = _run_threads("ledger", deals, args.seconds)
        else:
            raw = _run(_raw_client, [() for _ in range(clients)], args.seconds)
            ledger = _run(_ledger_client, deals, args.seconds)
        print(f"{clients:>7} {raw:>16.0f} {ledger:>18.0f} {ledger / raw:>6.2f}")


if __name__ == "__main__":
    main()
