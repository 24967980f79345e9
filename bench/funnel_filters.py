"""Funnel query latency for every filter combination the API offers, on PostgreSQL.

    python bench/funnel_filters.py [--reuse] [--opportunities 100000] [--queries 300]

Builds the same data set as ``bench/projections.py`` (its functions, imported; events in
time order) in database ``ledger_bench_time`` and projects it with ``salesledger project
--once``; with ``--reuse`` it takes the database as it is and only rebuilds the funnel
projection
(``salesledger rebuild funnel``). After a ``VACUUM ANALYZE`` it prints p50/p99 per filter
combination: owner, team subtree, region, product, source, expected-close period (year,
quarter, month, week, day), alone and combined.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from aggregates.plan import period_bounds  # noqa: E402
from projections.funnel import FunnelFilter  # noqa: E402
from services.database import Database  # noqa: E402
from services.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_projections", ROOT / "bench/projections.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
"""``bench/projections.py``: its data set, catch-up and latency functions."""
TEAM = frozenset({f"rep0-{r}" for r in range(harness.REPS_PER_MANAGER)} | {"mgr0"})


def period(name: str) -> dict[str, Any]:
    first, last = period_bounds(name)
    return {"close_from": first, "close_to": last}


def selections() -> dict[str, FunnelFilter]:
    """Every filter alone, and the combinations a manager would ask for."""
    owner: dict[str, Any] = {"owner_ids": frozenset({"rep0-0"})}
    team = {"owner_ids": TEAM}
    region = {"region": "east"}
    product = {"product": "vision"}
    source = {"source": "referral"}
    periods = {p: period(p) for p in ("2025", "2025-Q2", "2025-05", "2025-W20", "2025-05-14")}
    cases: dict[str, dict[str, Any]] = {
        "unfiltered": {},
        "owner": owner,
        "team": team,
        "region": region,
        "product": product,
        "source": source,
        **{f"period {p}": bounds for p, bounds in periods.items()},
        "region + quarter": {**region, **periods["2025-Q2"]},
        "region + week": {**region, **periods["2025-W20"]},
        "region + product + source": {**region, **product, **source},
        "region + product + source + month": {**region, **product, **source, **periods["2025-05"]},
        "product + day": {**product, **periods["2025-05-14"]},
        "owner + region": {**owner, **region},
        "owner + quarter": {**owner, **periods["2025-Q2"]},
        "owner + region + product + source + month": {
            **owner,
            **region,
            **product,
            **source,
            **periods["2025-05"],
        },
        "team + region": {**team, **region},
        "team + product": {**team, **product},
        "team + source": {**team, **source},
        "team + quarter": {**team, **periods["2025-Q2"]},
        "team + year": {**team, **periods["2025"]},
        "team + week": {**team, **periods["2025-W20"]},
        "team + region + quarter": {**team, **region, **periods["2025-Q2"]},
        "team + region + product + source + year": {
            **team,
            **region,
            **product,
            **source,
            **periods["2025"],
        },
    }
    return {name: FunnelFilter(**fields) for name, fields in cases.items()}


def vacuum_analyze(env: dict[str, str]) -> None:
    """What autovacuum does soon after a catch-up: statistics, and the visibility map that
    lets the covering owner index answer without reading the table."""
    with harness.connect(env) as conn:
        conn.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--dbname", default="ledger_bench_time")
    parser.add_argument("--reuse", action="store_true", help="keep the data, rebuild the funnel")
    args = parser.parse_args()

    env = harness.server_env(args.dbname)
    if not args.reuse:
        harness.recreate_database(args.dbname)
    os.environ.update(env)
    settings = Settings()
    if args.reuse:
        subprocess.run(
            [sys.executable, "-m", "services.cli", "rebuild", "funnel"],
            env={**os.environ, **env},
            check=True,
            cwd=ROOT,
        )
    else:
        harness.populate(settings, args.opportunities, args.events, "time")
        harness.catch_up(env)
    vacuum_analyze(env)
    database = Database(settings)
    with database.transaction() as tx:
        deals = tx.execute("SELECT COUNT(*) AS n FROM funnel_opportunities")[0]["n"]
    results: dict[str, object] = {"opportunities": int(deals), "managers": harness.MANAGERS}
    for name, selection in selections().items():
        results[name] = harness.latency(database, selection, args.queries)
    database.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
