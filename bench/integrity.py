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
import time
from typing import Any

from bench.harness import fresh_database, ledger_env, prepare_deals, rate_in_processes
from commands.ledger import SalesLedger
from services.demo import DemoBuilder
from services.integrity import ChainVerifier, Sealer
from services.persistence import LedgerPostgresFactory, LedgerPostgresRecorder


class UnchainedPostgresRecorder(LedgerPostgresRecorder):
    """The ledger recorder without the chain: the baseline the chain's cost is measured on."""

    chain_events = False


class UnchainedPostgresFactory(LedgerPostgresFactory):
    application_recorder_class = UnchainedPostgresRecorder


def _env(dbname: str, chained: bool) -> dict[str, str]:
    env = ledger_env(dbname)
    if not chained:
        env["PERSISTENCE_MODULE"] = "bench.integrity:UnchainedPostgresFactory"
    return env


def bench_writes(clients_list: list[int], seconds: float, rounds: int) -> None:
    with fresh_database("chain") as chained_db, fresh_database("plain") as plain_db:
        chained_env, plain_env = _env(chained_db, True), _env(plain_db, False)
        most = max(clients_list)
        chained_deals, plain_deals = (
            prepare_deals(chained_env, most),
            prepare_deals(plain_env, most),
        )
        print(f"{'clients':>7} {'without chain/s':>16} {'with chain/s':>13} {'ratio':>6}")
        for clients in clients_list:
            with_chain, without = 0.0, 0.0
            for _ in range(rounds):
                without += rate_in_processes(
                    clients, seconds, dbname=plain_db, env=plain_env, deals=plain_deals
                )
                with_chain += rate_in_processes(
                    clients, seconds, dbname=chained_db, env=chained_env, deals=chained_deals
                )
            print(
                f"{clients:>7} {without / rounds:>16.0f} {with_chain / rounds:>13.0f} "
                f"{with_chain / without:>6.2f}"
            )


def bench_verification(customers: int, opportunities: int) -> None:
    with fresh_database("demo") as dbname:
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
        print(
            f"verification (both chains and seals): {report.events} events in {elapsed:.2f} s "
            f"= {report.events / elapsed:,.0f} events/s"
        )
        ledger.close()


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
