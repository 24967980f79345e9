"""The cost of the hash chain on the write path, and the speed of verification.

Write throughput is measured on two fresh PostgreSQL databases in the same run, one
whose append function chains every event and one whose does not, alternating rounds
so machine noise hits both alike; it prints commands/s for each and the ratio.
Verification speed is measured over a demo data set (``services.demo``) built into a
fresh database: a full ``ChainVerifier.verify_range()`` (both chains and the seals),
after sealing, in events/s.

    python -m bench.integrity --seconds 8 --clients 1 4 --rounds 2 --opportunities 3000

Connection settings come from POSTGRES_* (``eval "$(scripts/postgres env)"``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from aggregates.organisation import Role
from commands.ledger import SalesLedger
from services.demo import DemoBuilder
from services.integrity import ChainVerifier, Sealer
from services.persistence import LedgerPostgresFactory, LedgerPostgresRecorder
from services.settings import Settings


class UnchainedPostgresRecorder(LedgerPostgresRecorder):
    """The ledger recorder without the chain: the baseline the chain's cost is measured on."""

    chain_events = False


class UnchainedPostgresFactory(LedgerPostgresFactory):
    application_recorder_class = UnchainedPostgresRecorder


def _admin_conninfo(dbname: str = "postgres") -> str:
    s = Settings(store="postgres")
    return (
        f"host={s.postgres_host} port={s.postgres_port} user={s.postgres_user} "
        f"password={s.postgres_password} dbname={dbname}"
    )


def _fresh_database(label: str) -> str:
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(name: str) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(dbname: str, chained: bool) -> dict[str, str]:
    env = Settings(store="postgres", postgres_dbname=dbname).event_store_env()
    if not chained:
        env["PERSISTENCE_MODULE"] = "bench.integrity:UnchainedPostgresFactory"
    return env


def _prepare(env: dict[str, str], clients: int) -> list[tuple[str, str]]:
    """An organisation with one rep per client, each with one open deal."""
    ledger = SalesLedger(env=env)
    try:
        ledger.set_up_organisation("Bench Co", "admin", "Admin")
    except Exception:  # noqa: BLE001 - set up by an earlier round
        pass
    deals = []
    for n in range(clients):
        rep = f"rep-{uuid.uuid4().hex[:8]}"
        ledger.add_person(rep, rep, Role.SALES_REP, None, actor="admin")
        customer = ledger.register_customer(name=f"Customer {rep}", source="bench", actor=rep)
        deal = ledger.open_opportunity(
            customer_id=customer.aggregate_id, owner_id=rep, title=f"deal {n}", source="bench",
            amount=Decimal("1000"), expected_close=date(2027, 1, 1), product="p", region="r",
            actor=rep,
        )
        deals.append((deal.aggregate_id, rep))
    ledger.close()
    return deals


def _client(env: dict[str, str], deal: str, actor: str, seconds: float, barrier: Any, out: Any) -> None:
    ledger = SalesLedger(env=env)
    ledger.log_opportunity_activity(deal, "call", "warm-up", actor=actor)
    barrier.wait()
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        ledger.log_opportunity_activity(deal, "call", "followed up", actor=actor)
        count += 1
    out.put(count)
    ledger.close()


def _throughput(env: dict[str, str], clients: int, seconds: float) -> float:
    deals = _prepare(env, clients)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(clients)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(env, deal, rep, seconds, barrier, out))
        for deal, rep in deals
    ]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def bench_writes(clients_list: list[int], seconds: float, rounds: int) -> None:
    chained_db, plain_db = _fresh_database("chain"), _fresh_database("plain")
    try:
        chained_env, plain_env = _env(chained_db, True), _env(plain_db, False)
        print(f"{'clients':>7} {'without chain/s':>16} {'with chain/s':>13} {'ratio':>6}")
        for clients in clients_list:
            with_chain, without = 0.0, 0.0
            for _ in range(rounds):
                without += _throughput(plain_env, clients, seconds)
                with_chain += _throughput(chained_env, clients, seconds)
            print(
                f"{clients:>7} {without / rounds:>16.0f} {with_chain / rounds:>13.0f} "
                f"{with_chain / without:>6.2f}"
            )
    finally:
        _drop_database(chained_db)
        _drop_database(plain_db)


def bench_verification(customers: int, opportunities: int) -> None:
    dbname = _fresh_database("demo")
    try:
        ledger = SalesLedger(env=_env(dbname, True))
        started = time.perf_counter()
        summary = DemoBuilder(
            ledger, customers=customers, opportunities=opportunities, progress=False
        ).build()
        print(f"demo data set: {summary.events} events in {time.perf_counter() - started:.0f} s")
        recorder: Any = ledger.recorder
        started = time.perf_counter()
        Sealer(recorder).seal()
        sealing = time.perf_counter() - started
        started = time.perf_counter()
        report = ChainVerifier(recorder).verify_range()
        elapsed = time.perf_counter() - started
        assert report.ok, report.first_break
        print(f"sealing: {report.events / sealing:,.0f} events/s")
        print(f"verification (both chains and seals): {report.events} events in {elapsed:.2f} s "
              f"= {report.events / elapsed:,.0f} events/s")
        ledger.close()
    finally:
        _drop_database(dbname)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--opportunities", type=int, default=3000)
    parser.add_argument("--skip-writes", action="store_true")
    parser.add_argument("--skip-verification", action="store_true")
    args = parser.parse_args()
    if not args.skip_writes:
        bench_writes(args.clients, args.seconds, args.rounds)
    if not args.skip_verification:
        bench_verification(args.customers, args.opportunities)


if __name__ == "__main__":
    main()
