"""``verify``'s claims check on a ledger full of claims, against the chains' check.

A PostgreSQL database is filled through the application's own commands, as clients make
them: customers registered with a name, tax id, phone and e-mail (four uniqueness claims
each, and a profile change claiming a second e-mail for one in ten), deals opened, every
command with an idempotency key (a command claim each), API tokens issued and rotated.
Then, in fresh processes, alternating: the chains' check (``ChainVerifier.verify_range``)
and the claims check (``audit_claims``), which ``salesledger verify`` runs one after
the other. It prints each one's rate, seconds and peak RSS.

    python -m bench.claims --customers 25000 --deals 25000 --rounds 3

Connection settings come from POSTGRES_* (``eval "$(scripts/postgres env)"``); the
database ``ledger_bench_claims`` is kept and reused when it holds enough events.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from bench.harness import conninfo
from bench.projections import populated_events
from commands.ledger import SalesLedger
from services.bootstrap import build_ledger
from services.claims_audit import audit_claims
from services.integrity import ChainVerifier
from services.settings import Settings

DBNAME = "ledger_bench_claims"
REPS = 20


def _settings(dbname: str) -> Settings:
    return Settings(store="postgres", postgres_dbname=dbname)


def fill(ledger: SalesLedger, customers: int, deals: int) -> None:
    """The organisation, tokens, customers and deals, each command with an idempotency key."""
    ledger.set_up_organisation("Bench Co", "admin", "Admin")
    ledger.add_person("mgr", "Manager", "manager", None, actor="admin")
    for r in range(REPS):
        ledger.add_person(f"rep{r}", f"Rep {r}", "sales_rep", "mgr", actor="admin")
        token_id, _ = ledger.issue_token(f"rep{r}", actor="admin", command_id=f"token-{r}")
        ledger.rotate_token(token_id, actor="admin", command_id=f"rotate-{r}")
    ids = []
    for c in range(customers):
        rep = f"rep{c % REPS}"
        ids.append(ledger.register_customer(
            name=f"Customer {c} Trading", source="web", tax_id=f"TAX-{c:08d}",
            phone=f"138{c:08d}", email=f"buyer{c}@example.com", owner_id=rep, actor=rep,
            command_id=f"register-{c}",
        ).aggregate_id)
        if c % 10 == 0:
            ledger.supplement_customer(
                ids[-1], {"email": f"second{c}@example.com"}, actor=rep, command_id=f"sup-{c}"
            )
    for d in range(deals):
        rep = f"rep{d % REPS}"
        ledger.open_opportunity(
            customer_id=ids[d % len(ids)], owner_id=rep, title=f"Deal {d}", source="web",
            amount=Decimal(1000 + d), expected_close=date(2026, 9, 1), product="erp",
            region="north", actor=rep, command_id=f"open-{d}",
        )


def check(kind: str, dbname: str) -> int:
    """Run one check; how many events (chains) or claims (claims) it covered."""
    ledger = build_ledger(_settings(dbname))
    try:
        if kind == "chains":
            report = ChainVerifier(ledger.recorder).verify_range()  # type: ignore[arg-type]
            assert report.ok, report.first_break
            return report.events
        claims = audit_claims(ledger)
        assert claims.ok, claims.breaks[:3]
        return claims.claims
    finally:
        ledger.close()


def _timed(kind: str, dbname: str, out: Any) -> None:
    started = time.perf_counter()
    count = check(kind, dbname)
    elapsed = time.perf_counter() - started
    out.put((count, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(kind: str, dbname: str) -> tuple[int, float, float]:
    """(events or claims, seconds, peak RSS in MiB) of one run in a fresh process."""
    out: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_timed, args=(kind, dbname, out))
    process.start()
    result: tuple[int, float, float] = out.get(timeout=3600)
    process.join()
    return result


def prepare(dbname: str, customers: int, deals: int) -> None:
    wanted = customers + customers // 10 + deals
    if populated_events(dbname) >= wanted:
        return
    with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    ledger = build_ledger(_settings(dbname))
    try:
        started = time.perf_counter()
        fill(ledger, customers, deals)
        print(f"filled in {time.perf_counter() - started:.0f} s")
    finally:
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=25_000)
    parser.add_argument("--deals", type=int, default=25_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dbname", default=DBNAME)
    args = parser.parse_args()
    prepare(args.dbname, args.customers, args.deals)
    print(f"{'round':>5} {'chains ev/s':>12} {'chains s':>9} {'claims/s':>9} {'claims s':>9} "
          f"{'chains MiB':>10} {'claims MiB':>10}")  # fmt: skip
    for round_ in range(1, args.rounds + 1):
        order = ("chains", "claims") if round_ % 2 else ("claims", "chains")
        results = {kind: measure(kind, args.dbname) for kind in order}
        (events, chain_s, chain_mb), (claims, claim_s, claim_mb) = (
            results["chains"], results["claims"]
        )
        print(f"{round_:>5} {events / chain_s:>12,.0f} {chain_s:>9.1f} {claims / claim_s:>9,.0f} "
              f"{claim_s:>9.1f} {chain_mb:>10.0f} {claim_mb:>10.0f}")  # fmt: skip
    print(f"{events:,} events, {claims:,} claims")


if __name__ == "__main__":
    main()
