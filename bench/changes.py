"""Pipeline changes over a quarter, as a ratio to two as-of funnel queries, and import speed.

On PostgreSQL (``scripts/postgres env``): a synthetic ledger (``bench/projections.py``'s
generator) of ``--opportunities`` deals and about ``--events`` events; then, alternating
in the same run, ``--runs`` times each: the waterfall of a quarter (T1 → T2 = T1 + 91
days) and the two as-of funnels at T1 and T2 it is the difference of. Then the ledger's
customers, opportunities and history exported as CSV (``export-crm``) and imported into
an empty ledger: rows per second of the import (the files' rows ÷ the import's time).

    .venv/bin/python -m bench.changes --opportunities 10000 --events 100000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.projections import (
    ADMIN_DBNAME,
    MANAGERS,
    REPS_PER_MANAGER,
    connect,
    populate,
    recreate_database,
    server_env,
)
from projections.funnel import fold_funnel_as_of
from projections.pipeline_changes import pipeline_changes
from services.analytics.events import recorded_events
from services.bootstrap import build_ledger
from services.importing.crm import run_import
from services.importing.export import export_crm
from services.settings import Settings

QUARTER_START = datetime(2025, 10, 1, tzinfo=UTC)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def time_queries(settings: Settings, runs: int) -> dict[str, float]:
    ledger = build_ledger(settings)
    t1, t2 = QUARTER_START, QUARTER_START + timedelta(days=91)
    changes, funnels = [], []
    for _ in range(runs):
        started = time.perf_counter()
        report = pipeline_changes(recorded_events(ledger), t1, t2)
        changes.append(time.perf_counter() - started)
        assert report.reconciled
        started = time.perf_counter()
        fold_funnel_as_of(ledger, t1)
        fold_funnel_as_of(ledger, t2)
        funnels.append(time.perf_counter() - started)
    return {
        "changes_p50_s": statistics.median(changes),
        "changes_p99_s": percentile(changes, 0.99),
        "two_funnels_p50_s": statistics.median(funnels),
        "two_funnels_p99_s": percentile(funnels, 0.99),
        "ratio_p99": percentile(changes, 0.99) / percentile(funnels, 0.99),
        "ratio_p50": statistics.median(changes) / statistics.median(funnels),
    }


def time_import(source: Settings, target_db: str) -> dict[str, float]:
    recreate_database(target_db)
    target_settings = Settings(store="postgres", postgres_dbname=target_db)
    target = build_ledger(target_settings)
    target.set_up_organisation("Bench Co", "admin", "Admin")
    for m in range(MANAGERS):
        target.add_person(f"mgr{m}", f"Manager {m}", "manager", None, actor="admin")
        for r in range(REPS_PER_MANAGER):
            target.add_person(f"rep{m}-{r}", f"Rep {m}-{r}", "sales_rep", f"mgr{m}", actor="admin")
    with tempfile.TemporaryDirectory() as folder:
        files = export_crm(build_ledger(source), Path(folder))
        rows = sum(len(p.read_text().splitlines()) - 1 for p in files.values())
        started = time.perf_counter()
        reports = run_import(target, "admin", files, progress=False)
        seconds = time.perf_counter() - started
    assert all(r.written and not r.problems for r in reports), [r.problems[:3] for r in reports]
    return {"import_rows": rows, "import_seconds": seconds, "import_rows_per_s": rows / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opportunities", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dbname", default="ledger_bench_changes")
    args = parser.parse_args()
    env = server_env(args.dbname)
    os.environ.update(env)
    recreate_database(args.dbname)
    settings = Settings()
    started = time.perf_counter()
    events = populate(settings, args.opportunities, args.events, "time")
    print(f"generated {events:,} events in {time.perf_counter() - started:.1f} s", flush=True)
    figures = {"opportunities": args.opportunities, "events": events, "runs": args.runs}
    figures.update(time_queries(settings, args.runs))
    print(json.dumps(figures, indent=2), flush=True)
    try:
        figures.update(time_import(settings, f"{args.dbname}_import"))
    finally:
        drop_database(f"{args.dbname}_import")
        drop_database(args.dbname)
    print(json.dumps(figures, indent=2))


def drop_database(dbname: str) -> None:
    with connect(server_env(ADMIN_DBNAME)) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
