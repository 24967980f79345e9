"""Projection catch-up speed, funnel query latency and worker memory, on PostgreSQL.

    python bench/projections.py [--events 1000000] [--opportunities 100000] [--dbname NAME]
                                [--reuse] [--order time|deal]

Creates (and afterwards keeps, for inspection) a fresh database ``ledger_bench_time`` (or
``ledger_bench_deal``, see ``--order``) on the server named by the ``POSTGRES_*``
environment. The data set is synthetic but shaped like
the demo (with ``--reuse``, an already populated database of that name is kept and only
its projections' tables and positions are dropped, so repeated runs skip the slow
population): an organisation of 5 managers and 50 reps, one customer per 5 opportunities,
and each opportunity opened, qualified, advanced through a random number of stages,
worked with activities, and won, lost or left open. The events are real domain event
objects encoded by the ledger's own mapper and written through the ledger's recorder in
batches of 10,000 (``insert_events``), which skips loading aggregates but stores exactly
what the commands would store.

Then, in the same run:
1. raw read: every notification read with ``select_notifications`` in batches of 5,000;
2. catch-up: ``salesledger project --once`` in a child process from position 0, timed
   (on a machine with 2 or more CPUs it spreads the projections over two worker
   processes of its own, the funnel's reading only its events: ``--processes``), with
   the peak RSS of the largest of them;
3. the raw read again; the ratio is the catch-up's rate against the raw read's mean time;
4. funnel query latency over the projected opportunities (unfiltered, by owner, by team),
   and as of a moment in the middle of the log (unfiltered, by team), a week before its
   end and just after it (unfiltered; these two also without the live totals, as the
   as-of query read them before), with the time of the fold from event 1 that the as-of
   query replaced (``fold_funnel_as_of``, 3 runs).

``--order time`` (the default, when populating) writes the events in time order, as the
demo and a live ledger record them; ``--order deal`` writes each deal's life in
consecutive positions (what this bench did before 2026-11-23), which is kinder to the
per-deal projections: a batch touches a tenth of the deals.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.utils import get_topic  # noqa: E402

from aggregates.customer import Customer  # noqa: E402
from aggregates.evaluation import QUALIFICATION_CRITERIA  # noqa: E402
from aggregates.opportunity import Opportunity  # noqa: E402
from commands.ledger import SalesLedger  # noqa: E402
from events.customer import CustomerRegistered  # noqa: E402
from events.opportunity import (  # noqa: E402
    OpportunityActivityLogged,
    OpportunityLost,
    OpportunityOpened,
    OpportunityQualified,
    OpportunityWon,
    StageAdvanced,
)
from projections.funnel import (  # noqa: E402
    FunnelFilter,
    fold_funnel_as_of,
    query_funnel,
    query_funnel_as_of,
)
from projections.funnel.as_of import RECENT_CHANGES  # noqa: E402
from projections.registry import all_projections  # noqa: E402
from projections.runner import POSITIONS_TABLE, SCHEMAS_TABLE  # noqa: E402
from services.bootstrap import build_ledger  # noqa: E402
from services.cli_read import default_processes  # noqa: E402
from services.database import Database  # noqa: E402
from services.settings import Settings  # noqa: E402

MANAGERS = 5
REPS_PER_MANAGER = 10
INSERT_BATCH = 10_000
READ_BATCH = 5_000
CUSTOMER_TOPIC = get_topic(Customer)
OPPORTUNITY_TOPIC = get_topic(Opportunity)
SOURCES = ("web", "referral", "campaign", "channel partner", "trade fair")
REGIONS = ("east", "west", "north", "south", "central")
PRODUCTS = ("robot-arm", "conveyor", "vision", "controller", "service")
ADMIN_DBNAME = os.environ.get("POSTGRES_DBNAME", "ledger")
"""The database to connect to while creating or looking for the bench's own."""


def server_env(dbname: str) -> dict[str, str]:
    return {
        "POSTGRES_HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        "POSTGRES_PORT": os.environ.get("POSTGRES_PORT", "55432"),
        "POSTGRES_USER": os.environ.get("POSTGRES_USER", "ledger"),
        "POSTGRES_PASSWORD": os.environ.get("POSTGRES_PASSWORD", "ledger"),
        "POSTGRES_DBNAME": dbname,
        "LEDGER_STORE": "postgres",
    }


def connect(env: dict[str, str]) -> psycopg.Connection[Any]:
    """An autocommit connection to the server and database ``env`` names."""
    return psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        dbname=env["POSTGRES_DBNAME"],
        autocommit=True,
    )


def recreate_database(dbname: str) -> None:
    with connect(server_env(ADMIN_DBNAME)) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')


def synthetic_events(
    opportunities: int, events: int, seed: int = 7, order: str = "deal"
) -> Iterator[Any]:
    """Domain events for ``opportunities`` deals, about ``events`` in all, in time order
    per aggregate. ``order="deal"``: each deal's events one after the other (its whole
    life in consecutive positions, so that log positions and times are unrelated);
    ``order="time"``: all events in time order, as a live ledger (and the demo, which
    simulates day by day) records them."""
    rng = random.Random(seed)
    reps = [f"rep{m}-{r}" for m in range(MANAGERS) for r in range(REPS_PER_MANAGER)]
    customers = max(1, opportunities // 5)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    per_deal = max(4.0, (events - customers) / opportunities)
    spacing = timedelta(minutes=1) if order == "deal" else timedelta(seconds=1)
    for n in range(customers):
        yield CustomerRegistered(
            originator_id=uuid5(NAMESPACE_URL, f"bench:customer:{n}"),
            originator_version=1,
            timestamp=start + n * spacing,
            originator_topic=CUSTOMER_TOPIC,
            actor=reps[n % len(reps)],
            name=f"Customer {n}",
            source=SOURCES[n % 5],
            tax_id=None,
            phone=None,
            email=None,
            owner_id=reps[n % len(reps)],
            profile={},
        )

    def deal(n: int, rng: random.Random) -> Iterator[Any]:
        return _deal_events(n, rng, reps, customers, start, per_deal)

    if order == "deal":
        for n in range(opportunities):
            yield from deal(n, rng)
        return
    # Time order: deals start in order of their first moment; a heap merges the events
    # of the deals under way (a few thousand at a time), each deal with its own random
    # sequence so that its start is known before it is under way.
    def deal_rng(n: int) -> random.Random:
        return random.Random(seed * 1_000_003 + n)

    def opening(n: int) -> float:
        peek = deal_rng(n)
        peek.randrange(len(reps))  # the owner, drawn first
        return peek.uniform(0, DEAL_START_DAYS)

    starts = sorted((opening(n), n) for n in range(opportunities))
    under_way: list[tuple[datetime, int, Any, Iterator[Any]]] = []
    next_start = 0
    while under_way or next_start < len(starts):
        if next_start < len(starts) and (
            not under_way or start + timedelta(days=starts[next_start][0]) <= under_way[0][0]
        ):
            n = starts[next_start][1]
            next_start += 1
            events_of_deal = deal(n, deal_rng(n))
            first = next(events_of_deal)
            heapq.heappush(under_way, (first.timestamp, n, first, events_of_deal))
            continue
        _, n, event, events_of_deal = heapq.heappop(under_way)
        yield event
        following = next(events_of_deal, None)
        if following is not None:
            heapq.heappush(under_way, (following.timestamp, n, following, events_of_deal))


DEAL_START_DAYS = 480
"""Deals open over this many days after the data set's start."""


def _deal_events(
    n: int,
    rng: random.Random,
    reps: list[str],
    customers: int,
    start: datetime,
    per_deal: float,
) -> Iterator[Any]:
    """Deal ``n``'s events, opened, qualified, advanced, worked and closed (or not)."""
    criteria = {c: True for c in QUALIFICATION_CRITERIA}
    deal_id = uuid5(NAMESPACE_URL, f"bench:opportunity:{n}")
    owner = reps[rng.randrange(len(reps))]
    moment = start + timedelta(days=rng.uniform(0, DEAL_START_DAYS))
    version = 1

    def stamp() -> dict[str, Any]:
        nonlocal moment, version
        moment += timedelta(hours=rng.uniform(1, 240))
        fields = {
            "originator_id": deal_id,
            "originator_version": version,
            "timestamp": moment,
            "actor": owner,
        }
        version += 1
        return fields

    yield OpportunityOpened(
        **stamp(),
        originator_topic=OPPORTUNITY_TOPIC,
        customer_id=str(uuid5(NAMESPACE_URL, f"bench:customer:{n % customers}")),
        owner_id=owner,
        title=f"Deal {n}",
        source=SOURCES[rng.randrange(5)],
        amount=Decimal(rng.randrange(10, 500) * 1000),
        expected_close=(moment + timedelta(days=rng.uniform(30, 240))).date(),
        product=PRODUCTS[rng.randrange(5)],
        region=REGIONS[rng.randrange(5)],
    )
    yield OpportunityQualified(**stamp(), criteria=criteria)
    top = rng.randint(1, 7)
    for stage in range(2, top + 1):
        yield StageAdvanced(**stamp(), from_stage=stage - 1, to_stage=stage, reason=None)
    activities = round(per_deal - 2 - (top - 1) - 0.5 + rng.uniform(-1, 1))
    for _ in range(max(0, activities)):
        yield OpportunityActivityLogged(**stamp(), kind="call", summary="follow-up")
    outcome = rng.random()
    if top == 7 and outcome < 0.6:
        yield OpportunityWon(
            **stamp(), amount=Decimal(rng.randrange(10, 500) * 1000), closed_on=moment.date()
        )
    elif outcome < 0.3:
        yield OpportunityLost(**stamp(), reason="price", competitor="ABB", closed_on=moment.date())


def populated_events(dbname: str) -> int:
    """How many events the database ``dbname`` already holds (0 if it does not exist)."""
    with connect(server_env(ADMIN_DBNAME)) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
    if not exists:
        return 0
    table = f"{SalesLedger.name.lower()}_events"
    with connect(server_env(dbname)) as conn:
        found = conn.execute("SELECT to_regclass(%s)", [table]).fetchone()
        if found is None or found[0] is None:
            return 0
        row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def drop_projections(dbname: str) -> None:
    """Drop every projection's tables and the positions, so the catch-up starts from 0."""
    tables = [table for projection in all_projections() for table in projection.tables]
    with connect(server_env(dbname)) as conn:
        for table in [*tables, POSITIONS_TABLE, SCHEMAS_TABLE]:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def populate(settings: Settings, opportunities: int, events: int, order: str) -> int:
    ledger = build_ledger(settings)
    ledger.set_up_organisation("Bench Co", "admin", "Admin")
    for m in range(MANAGERS):
        ledger.add_person(f"mgr{m}", f"Manager {m}", "manager", None, actor="admin")
        for r in range(REPS_PER_MANAGER):
            ledger.add_person(f"rep{m}-{r}", f"Rep {m}-{r}", "sales_rep", f"mgr{m}", actor="admin")
    batch = []
    written = 0
    for event in synthetic_events(opportunities, events, order=order):
        batch.append(ledger.mapper.to_stored_event(event))
        if len(batch) == INSERT_BATCH:
            ledger.recorder.insert_events(batch)
            written += len(batch)
            batch = []
    ledger.recorder.insert_events(batch)
    return written + len(batch)


def raw_read(settings: Settings) -> tuple[int, float]:
    ledger = build_ledger(settings)
    count, start, position = 0, time.perf_counter(), None
    while batch := ledger.recorder.select_notifications(
        position, READ_BATCH, inclusive_of_start=False
    ):
        count += len(batch)
        position = batch[-1].id
    return count, time.perf_counter() - start


def catch_up(env: dict[str, str], processes: int) -> tuple[float, float]:
    """Seconds for a cold-start catch-up in a child process (``processes`` workers), and
    the peak RSS of the largest process in MB."""
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "project",
            "--once",
            "--batch-size",
            str(READ_BATCH),
            "--processes",
            str(processes),
        ],
        env={**os.environ, **env},
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak_kb / 1024


AS_OF_MOMENT = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=240)
"""In the middle of the synthetic log (as ``bench/http_growth.py`` asks)."""


def latency(
    database: Database,
    selection: FunnelFilter,
    runs: int,
    as_of: datetime | None = None,
    recent_changes: int = RECENT_CHANGES,
) -> dict[str, float]:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        if as_of is None:
            query_funnel(database, selection)
        else:
            query_funnel_as_of(database, as_of, selection, recent_changes=recent_changes)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    return {
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 2),
    }


def fold_time(settings: Settings, runs: int) -> list[float]:
    """Milliseconds of each fold from event 1 (the as-of query before its read model)."""
    ledger = build_ledger(settings)
    timings: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fold_funnel_as_of(ledger, AS_OF_MOMENT)
        timings.append(round((time.perf_counter() - start) * 1000))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--order",
        choices=["time", "deal"],
        default="time",
        help="when populating: all events in time order, or each deal's events together",
    )
    parser.add_argument("--dbname", help="default: ledger_bench_ORDER")
    parser.add_argument(
        "--processes",
        type=int,
        default=default_processes("postgres", rebuilding=True),
        help="worker processes for the catch-up (default: `rebuild --in-place`'s here)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the database's events if it has some; drop only the projections",
    )
    args = parser.parse_args()
    args.dbname = args.dbname or f"ledger_bench_{args.order}"

    env = server_env(args.dbname)
    os.environ.update(env)
    existing = populated_events(args.dbname) if args.reuse else 0
    settings = Settings()
    if existing:
        drop_projections(args.dbname)
        print(f"reusing {existing:,} events in {args.dbname}", flush=True)
    else:
        recreate_database(args.dbname)
        started = time.perf_counter()
        total = populate(settings, args.opportunities, args.events, args.order)
        generated = time.perf_counter() - started
        print(f"generated {total:,} events in {generated:.1f} s", flush=True)

    # The raw read before and after the catch-up: on a shared machine the speed of the
    # moment moves both, and the ratio is taken against their mean.
    read_count, read_before = raw_read(settings)
    catch_up_seconds, peak_rss_mb = catch_up(env, args.processes)
    _, read_after = raw_read(settings)
    read_seconds = (read_before + read_after) / 2
    with connect(env) as conn:
        # What autovacuum does soon after a catch-up on a live server: statistics, and the
        # visibility map that lets the as-of query read its covering indexes only.
        conn.execute("VACUUM (ANALYZE) funnel_opportunities")
        conn.execute("VACUUM (ANALYZE) funnel_deal_versions")
    database = Database(settings)
    with database.transaction() as tx:
        deals = tx.execute("SELECT COUNT(*) AS n FROM funnel_opportunities")[0]["n"]
        log_end = datetime.fromisoformat(
            tx.execute("SELECT MAX(events_until) AS t FROM funnel_opportunities")[0]["t"]
        )
    team = {f"rep0-{r}" for r in range(REPS_PER_MANAGER)} | {"mgr0"}
    results = {
        "events": read_count,
        "raw_read_events_per_s": round(read_count / read_seconds),
        "raw_read_before_and_after": [
            round(read_count / read_before),
            round(read_count / read_after),
        ],
        "catch_up_events_per_s": round(read_count / catch_up_seconds),
        "catch_up_to_raw_ratio": round(read_seconds / catch_up_seconds, 3),
        "catch_up_seconds": round(catch_up_seconds, 1),
        "catch_up_processes": args.processes,
        "worker_peak_rss_mb": round(peak_rss_mb, 1),
        "opportunities": int(deals),
        "funnel_all": latency(database, FunnelFilter(), args.queries),
        "funnel_by_owner": latency(database, FunnelFilter(owner_ids={"rep0-0"}), args.queries),
        "funnel_by_team": latency(database, FunnelFilter(owner_ids=team), args.queries),
        "funnel_by_region_and_quarter": latency(
            database,
            FunnelFilter(region="east", close_from=date(2025, 4, 1), close_to=date(2025, 6, 30)),
            args.queries,
        ),
        "funnel_as_of_all": latency(database, FunnelFilter(), args.queries, AS_OF_MOMENT),
        "funnel_as_of_by_team": latency(
            database, FunnelFilter(owner_ids=team), args.queries, AS_OF_MOMENT
        ),
        "funnel_as_of_a_week_before_the_end_all": latency(
            database, FunnelFilter(), args.queries, log_end - timedelta(days=7)
        ),
        "funnel_as_of_the_end_all": latency(
            database, FunnelFilter(), args.queries, log_end + timedelta(seconds=1)
        ),
        # The same two moments reading every current state begun by then (no totals).
        "funnel_as_of_a_week_before_the_end_all_without_totals": latency(
            database, FunnelFilter(), args.queries, log_end - timedelta(days=7), 0
        ),
        "funnel_as_of_the_end_all_without_totals": latency(
            database, FunnelFilter(), args.queries, log_end + timedelta(seconds=1), 0
        ),
        "funnel_as_of_by_fold_ms": fold_time(settings, runs=3),
    }
    database.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
