"""What the write benchmarks share: throwaway databases, a prepared organisation with one
deal per client, and clients run as processes or as threads of one application."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from aggregates.errors import RuleViolationError
from aggregates.organisation import Role
from commands.ledger import SalesLedger
from services.settings import Settings

Deal = tuple[str, str]
"""(opportunity id, its owner), one per client."""


def conninfo(dbname: str | None = None) -> str:
    return Settings(store="postgres").postgres_conninfo(dbname)


START_TIMEOUT = 120.0
"""Seconds clients wait for each other to start: a client that failed fails the run."""


@contextlib.contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """A new, empty database for one benchmark (with the raw baseline's table), dropped
    afterwards. (The clients creating the table themselves, ``IF NOT EXISTS``, raced in
    the server's catalogue and one of them could fail.)"""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(conninfo(name), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_raw (id uuid PRIMARY KEY, payload bytea, "
            "created timestamptz DEFAULT now())"
        )
    try:
        yield name
    finally:
        with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ledger_env(dbname: str) -> dict[str, str]:
    return Settings(store="postgres", postgres_dbname=dbname).event_store_env()


def prepare_deals(env: dict[str, str], clients: int) -> list[Deal]:
    """An organisation with one rep per client, each with one open deal."""
    ledger = SalesLedger(env=env)
    with contextlib.suppress(RuleViolationError):  # set up by an earlier round
        ledger.set_up_organisation("Bench Co", "admin", "Admin")
    deals = []
    for n in range(clients):
        rep = f"rep-{uuid.uuid4().hex[:8]}"
        ledger.add_person(rep, rep, Role.SALES_REP, None, actor="admin")
        customer = ledger.register_customer(name=f"Customer {rep}", source="web", actor=rep)
        deal = ledger.open_opportunity(
            customer_id=customer.aggregate_id,
            owner_id=rep,
            title=f"deal {n}",
            source="web",
            amount=Decimal("1000"),
            expected_close=date(2027, 1, 1),
            product="p",
            region="r",
            actor=rep,
        )
        deals.append((deal.aggregate_id, rep))
    ledger.close()
    return deals


def log_activities(ledger: SalesLedger, deal: Deal, seconds: float, start: Any) -> int:
    """The benchmarked command, repeated for ``seconds`` once ``start`` (a barrier) opens:
    log an activity on the client's own deal — load it, decide, append one event."""
    opportunity_id, owner = deal
    for _ in range(20):
        ledger.log_opportunity_activity(opportunity_id, "call", "warm-up", actor=owner)
    _wait_for_connections(ledger)
    start.wait(START_TIMEOUT)
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        ledger.log_opportunity_activity(opportunity_id, "call", "followed up", actor=owner)
        count += 1
    return count


def _wait_for_connections(ledger: SalesLedger) -> None:
    """Let the read pool finish opening its connections (in the background, from the
    first use), so that start-up work does not fall inside the measured seconds."""
    datastore = getattr(ledger.recorder, "datastore", None)
    if datastore is not None:
        datastore.pool.wait(timeout=60)


def insert_rows(dbname: str, seconds: float, start: Any, payload_size: int = 200) -> int:
    """The raw baseline: one single-row INSERT transaction per 'command'."""
    payload = b"x" * payload_size
    with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
        start.wait(START_TIMEOUT)
        count, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            conn.execute(
                "INSERT INTO bench_raw (id, payload) VALUES (%s, %s)",
                (uuid.uuid4(), payload),
                prepare=True,
            )
            count += 1
    return count


def _in_process(work: Callable[..., int], args: tuple[Any, ...], out: Any) -> None:
    out.put(work(*args))


def _ledger_in_process(
    env: dict[str, str], deal: Deal, seconds: float, start: Any, out: Any
) -> None:
    ledger = SalesLedger(env=env)
    out.put(log_activities(ledger, deal, seconds, start))
    ledger.close()


def rate_in_processes(
    clients: int, seconds: float, *, dbname: str, env: dict[str, str] | None, deals: list[Deal]
) -> float:
    """Operations per second with one process per client: the raw baseline when ``env``
    is None, else the ledger command."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(clients)
    out: Any = ctx.Queue()
    if env is None:
        procs = [
            ctx.Process(target=_in_process, args=(insert_rows, (dbname, seconds, start), out))
            for _ in range(clients)
        ]
    else:
        procs = [
            ctx.Process(target=_ledger_in_process, args=(env, deal, seconds, start, out))
            for deal in deals[:clients]
        ]
    for p in procs:
        p.start()
    total = sum(int(n) for n in gather(procs, out, seconds + 2 * START_TIMEOUT))
    return total / seconds


def gather(procs: list[Any], out: Any, timeout: float) -> list[Any]:
    """What each started client process puts on ``out``, once they have all ended; if
    one fails to report within ``timeout`` seconds, all are killed and the run fails."""
    try:
        results = [out.get(timeout=timeout) for _ in procs]
    except queue.Empty:
        failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        for p in procs:
            p.kill()
        raise RuntimeError(f"a client failed (exit codes {failed}); see its traceback") from None
    for p in procs:
        p.join()
    return results


def rate_in_threads(
    clients: int, seconds: float, *, dbname: str, env: dict[str, str] | None, deals: list[Deal]
) -> float:
    """Operations per second with one thread per client in one process, sharing one
    application (as requests do in the API server)."""
    start = threading.Barrier(clients)
    counts: list[int] = []
    ledger = SalesLedger(env=env) if env is not None else None

    def work(n: int) -> None:
        if ledger is None:
            counts.append(insert_rows(dbname, seconds, start))
        else:
            counts.append(log_activities(ledger, deals[n], seconds, start))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if ledger is not None:
        ledger.close()
    return sum(counts) / seconds
