"""The growth table of ``bench/http.py``: each read over HTTP at several ledger sizes.

For each size: a throwaway database of that many synthetic events (``bench/projections.py``'s
generator, in time order; its generation time is printed), projected once
(``salesledger project --once``), served by one API process; then each read is asked 200
times one after the other (after 10 unmeasured), p50/p99, beside a raw ``SELECT`` of the
deal's rows through psycopg. A deal with 1,000 activities is appended to each database too
through the command (``GET /opportunities/{id}`` on it; cold: its first read in a new API
process, which loads its latest snapshot and the events after it; warm: the reads after).
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import psycopg

from aggregates.opportunity import Opportunity, Status
from bench.harness import conninfo, fresh_database
from bench.http_load import (
    request_json,
    salesledger,
    server,
    timed,
    wait_until_answering,
)
from commands.ledger import SalesLedger
from services.settings import Settings

GROWTH_PORT = 18735
RUNS = 200
LONG_DEAL_EVENTS = 1_000
LOGS = Path("/tmp")


def growth(sizes: list[int]) -> list[dict[str, Any]]:
    return [_at_size(size) for size in sizes]


def _at_size(size: int) -> dict[str, Any]:
    from bench.http import server_env
    from bench.projections import populate

    with fresh_database(f"growth{size}") as dbname:
        env = server_env(dbname)
        settings = Settings(store="postgres", postgres_dbname=dbname)
        began = time.perf_counter()
        events = populate(settings, max(1, size // 10), size, "time")
        ledger = SalesLedger(env=settings.event_store_env())
        _, admin = ledger.issue_token("admin", actor="admin")
        _, rep_token = ledger.issue_token("rep0-0", actor="admin")
        long_deal = _long_deal(ledger)
        ledger.close()
        generated = time.perf_counter() - began
        began = time.perf_counter()
        subprocess.run(salesledger("project", "--once"), env=_env(env), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        projected = time.perf_counter() - began
        deal = _deal_with(dbname, 13) or _deal_with(dbname, 10)
        moment = _middle_moment(dbname)
        result: dict[str, Any] = {"events": events + LONG_DEAL_EVENTS, "generated_s":
                                  round(generated, 1), "projected_s": round(projected, 1)}
        serve = salesledger("serve", "--port", str(GROWTH_PORT), "--workers", "1")
        with server(serve, env, LOGS / "bench-http-growth.log") as api:
            wait_until_answering(GROWTH_PORT, "/people", api)
            _reads(admin, "/people", runs=1)  # the process warm, the long deal not yet read
            result["long_deal_cold"] = _once(admin, f"/opportunities/{long_deal}")
            result["long_deal_warm"] = _reads(admin, f"/opportunities/{long_deal}")
            result["history"] = _reads(admin, f"/opportunities/{deal}/history")
            result["deal"] = _reads(admin, f"/opportunities/{deal}")
            result["funnel"] = _reads(rep_token, "/funnel")
            result["funnel_as_of"] = _reads(rep_token, f"/funnel?as_of={moment}", runs=50)
            result["forecasts"] = _reads(rep_token, "/forecasts/2025-Q3")
            result["raw_select_of_deal"] = _raw_select(dbname, deal)
    return result


def _env(env: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **env}


def _long_deal(ledger: SalesLedger) -> str:
    """The bench's first deal, given ``LONG_DEAL_EVENTS`` activities more through the
    command (so that its snapshots are taken as a live deal's would be)."""
    deals = (str(uuid5(NAMESPACE_URL, f"bench:opportunity:{n}")) for n in range(1000))
    opened = (ledger.read(Opportunity, deal) for deal in deals)
    chosen = next(o for o in opened if o.status == Status.OPEN)
    deal, owner = str(chosen.id), chosen.owner_id
    for _ in range(LONG_DEAL_EVENTS):
        ledger.log_opportunity_activity(deal, "call", "a long deal", actor=owner)
    return deal


def _deal_with(dbname: str, events: int) -> str | None:
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute(
            "SELECT originator_id FROM salesledger_events GROUP BY originator_id "
            "HAVING COUNT(*) = %s LIMIT 1",
            [events],
        ).fetchone()
    return str(row[0]) if row else None


def _middle_moment(dbname: str) -> str:
    """A moment in the middle of the synthetic log (as ``Z`` time, for the query)."""
    return (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=240)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reads(token: str, path: str, runs: int = RUNS) -> dict[str, float]:
    for _ in range(10):
        _check(request_json(GROWTH_PORT, "GET", path, token)[0], path)
    return timed(lambda: _check(request_json(GROWTH_PORT, "GET", path, token)[0], path), runs)


def _once(token: str, path: str) -> dict[str, float]:
    began = time.perf_counter()
    _check(request_json(GROWTH_PORT, "GET", path, token)[0], path)
    return {"ms": round((time.perf_counter() - began) * 1000, 2)}


def _check(status: int, path: str) -> None:
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")


def _raw_select(dbname: str, deal: str | None) -> dict[str, float]:
    with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
        def select() -> None:
            conn.execute(
                "SELECT * FROM salesledger_events WHERE originator_id = %s "
                "ORDER BY originator_version", [deal], prepare=True,
            ).fetchall()
        return timed(select, RUNS)


def print_growth(rows: list[dict[str, Any]]) -> None:
    reads = ["history", "deal", "funnel", "funnel_as_of", "forecasts", "long_deal_warm",
             "raw_select_of_deal"]
    print("\n| read (p50 / p99 ms) | " + " | ".join(f"{r['events']:,} events" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for read in reads:
        cells = [f"{r[read]['p50_ms']} / {r[read]['p99_ms']}" for r in rows]
        print(f"| {read} | " + " | ".join(cells) + " |")
    print("| long_deal_cold (first read, ms) | "
          + " | ".join(str(r["long_deal_cold"]["ms"]) for r in rows) + " |")
    print("| generated / projected (s) | "
          + " | ".join(f"{r['generated_s']} / {r['projected_s']}" for r in rows) + " |")
