"""Command throughput through the ledger on PostgreSQL, beside a raw psycopg baseline.

Both sides run against the same fresh database, in the same run, alternating rounds, so
the ratio holds on a noisy shared machine. The baseline is one single-row INSERT
transaction per command; the ledger side runs a real command (log an activity on the
client's own deal: permission check against the organisation, the deal's rules, one
hash-chained event appended with its claims in one transaction).

    python -m bench.writes --seconds 8 --clients 1 8 --rounds 2 --mode processes
    python -m bench.writes --mode threads     # clients as threads sharing one application

Connection settings come from POSTGRES_* (``eval "$(scripts/postgres env)"``).
"""

from __future__ import annotations

import argparse
import statistics

from bench.harness import (
    fresh_database,
    ledger_env,
    prepare_deals,
    rate_in_processes,
    rate_in_threads,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--mode",
        choices=["processes", "threads"],
        default="processes",
        help="clients as separate processes, or as threads sharing one application",
    )
    args = parser.parse_args()
    rate = rate_in_threads if args.mode == "threads" else rate_in_processes
    with fresh_database("writes") as dbname:
        env = ledger_env(dbname)
        deals = prepare_deals(env, max(args.clients))
        print(f"clients as {args.mode}, {args.rounds} rounds of {args.seconds:.0f} s each side")
        print(
            f"{'clients':>7} {'raw insert tx/s':>16} {'ledger commands/s':>18} {'ratio':>6} "
            "  per-round ratios"
        )
        for clients in args.clients:
            raws, ledgers = [], []
            for _ in range(args.rounds):
                raws.append(rate(clients, args.seconds, dbname=dbname, env=None, deals=deals))
                ledgers.append(rate(clients, args.seconds, dbname=dbname, env=env, deals=deals))
            rounds = " ".join(
                f"{ledger / raw:.2f}" for raw, ledger in zip(raws, ledgers, strict=True)
            )
            raw, ledger = statistics.mean(raws), statistics.mean(ledgers)
            print(f"{clients:>7} {raw:>16.0f} {ledger:>18.0f} {ledger / raw:>6.2f}   {rounds}")


if __name__ == "__main__":
    main()
