"""List and search latency against a plain indexed SELECT of the same rows, same run.

    python bench/lists.py [--opportunities 100000] [--customers 20000] [--queries 300]

Fills the list read models of a fresh PostgreSQL database (``ledger_bench_lists``) by
running ``ListingProjection`` itself over generated events (opportunities opened, team
members added, customers registered; no event store: the read model is what is
measured), then times each list query the API makes (``projections.list_queries``) and,
for the same rows, a plain SELECT by primary key, interleaved, and prints p50/p99 of
both and the ratio of the p99s as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from projections.base import RecordedEvent  # noqa: E402
from projections.list_queries import (  # noqa: E402
    CUSTOMER_SORTS,
    FUZZY_SORT,
    OPPORTUNITY_SORTS,
    CustomerFilter,
    OpportunityFilter,
    PageRequest,
    RowPage,
    query_customers,
    query_opportunities,
)
from projections.listings import (  # noqa: E402
    CUSTOMER_COLUMNS,
    OPPORTUNITY_COLUMNS,
    ListingProjection,
)
from services.database import Database  # noqa: E402
from services.settings import Settings  # noqa: E402

DATABASE = "ledger_bench_lists"
MANAGERS = 10
REPS_PER_MANAGER = 10
BATCH = 10_000


def fresh_database() -> Database:
    settings = Settings(store="postgres")
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    return Database(settings.model_copy(update={"postgres_dbname": DATABASE}))


def reps() -> list[str]:
    return [f"rep{m}-{r}" for m in range(MANAGERS) for r in range(REPS_PER_MANAGER)]


def events(opportunities: int, customers: int, rnd: random.Random) -> list[RecordedEvent]:
    people = reps()
    recorded: list[RecordedEvent] = []
    at = "2026-01-01T00:00:00.000000Z"
    for n in range(customers):
        event = SimpleNamespace(
            name=f"Customer {n:06d} Trading Ltd",
            source="web",
            tax_id=f"TX{n:08d}",
            phone=f"+86 21 {5000_0000 + n}",
            email=f"buyer{n}@customer{n}.example",
            owner_id=people[n % len(people)],
            profile={"region": rnd.choice(["east", "west", "north", "south"])},
            originator_version=1,
        )
        recorded.append(
            RecordedEvent(len(recorded) + 1, event, "CustomerRegistered", f"c{n:07d}", at, "x")
        )
    for n in range(opportunities):
        deal_id = f"o{n:08d}"
        event = SimpleNamespace(
            customer_id=f"c{rnd.randrange(customers):07d}",
            owner_id=rnd.choice(people),
            title=f"deal {n}",
            source=rnd.choice(["web", "referral", "campaign"]),
            product=rnd.choice(["arm", "vision", "conveyor", "software"]),
            region=rnd.choice(["east", "west", "north", "south"]),
            amount=Decimal(rnd.randrange(1_000, 2_000_000)),
            expected_close=date(2025, 1, 1) + timedelta(days=rnd.randrange(730)),
            originator_version=1,
        )
        position = len(recorded) + 1
        recorded.append(RecordedEvent(position, event, "OpportunityOpened", deal_id, at, "x"))
        if n % 5 == 0:
            member = SimpleNamespace(person_id=rnd.choice(people), originator_version=2)
            recorded.append(
                RecordedEvent(len(recorded) + 1, member, "TeamMemberAdded", deal_id, at, "x")
            )
    return recorded


def populate(database: Database, recorded: list[RecordedEvent]) -> None:
    projection = ListingProjection()
    with database.transaction() as tx:
        projection.create_tables(tx)
        projection.create_indexes(tx)
    for start in range(0, len(recorded), BATCH):
        with database.transaction() as tx:
            projection.process(tx, recorded[start : start + BATCH])
    with psycopg.connect(database.settings.postgres_conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def by_key(database: Database, table: str, key: str, columns: tuple[str, ...]) -> Callable[
    [list[str]], Any
]:
    """The plain SELECT: the same rows by primary key."""

    def select(keys: list[str]) -> Any:
        with database.transaction() as tx:
            return tx.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE {key} = ANY(%s::text[])",
                [keys],
            )

    return select


def cases(database: Database) -> dict[str, tuple[Callable[[], RowPage], str]]:
    team = {f"rep0-{r}" for r in range(REPS_PER_MANAGER)} | {"mgr0"}
    by_close = OPPORTUNITY_SORTS["expected_close"]
    deep_after = ("1500000", "o00000000")
    return {
        "rep: my deals": (
            lambda: query_opportunities(
                database, OpportunityFilter(owner_id="rep0-0"), PageRequest(by_close), {"rep0-0"}
            ),
            "opportunity_id",
        ),
        "rep: all I may see": (
            lambda: query_opportunities(
                database, OpportunityFilter(), PageRequest(by_close), {"rep0-0"}
            ),
            "opportunity_id",
        ),
        "manager: team, open, east": (
            lambda: query_opportunities(
                database,
                OpportunityFilter(status="open", region="east"),
                PageRequest(by_close),
                team,
            ),
            "opportunity_id",
        ),
        "auditor: by amount, deep page": (
            lambda: query_opportunities(
                database,
                OpportunityFilter(),
                PageRequest(OPPORTUNITY_SORTS["-amount"], deep_after),
                None,
            ),
            "opportunity_id",
        ),
        "auditor: close range + amount": (
            lambda: query_opportunities(
                database,
                OpportunityFilter(
                    close_from=date(2025, 5, 1),
                    close_to=date(2025, 5, 31),
                    amount_min=Decimal(100_000),
                ),
                PageRequest(by_close),
                None,
            ),
            "opportunity_id",
        ),
        "search: phone variant": (
            lambda: query_customers(
                database,
                CustomerFilter(search="0086-21-5001-2345"),
                PageRequest(CUSTOMER_SORTS["name"]),
                None,
            ),
            "customer_id",
        ),
        "search: name prefix, rep": (
            lambda: query_customers(
                database,
                CustomerFilter(search="customer 0012"),
                PageRequest(CUSTOMER_SORTS["name"]),
                set(reps()[:1]),
            ),
            "customer_id",
        ),
        "search: fuzzy name": (
            lambda: query_customers(
                database,
                CustomerFilter(search="custmer 001234 tradng", fuzzy=True),
                PageRequest(FUZZY_SORT, limit=20),
                None,
            ),
            "customer_id",
        ),
    }


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(database: Database, queries: int) -> dict[str, Any]:
    baselines = {
        "opportunity_id": by_key(database, "list_opportunities", "opportunity_id",
                                 OPPORTUNITY_COLUMNS),
        "customer_id": by_key(database, "list_customers", "customer_id", CUSTOMER_COLUMNS),
    }  # fmt: skip
    results: dict[str, Any] = {}
    for name, (query, key) in cases(database).items():
        rows = [row[key] for row in query().rows]
        assert rows, f"{name}: no rows"
        listed: list[float] = []
        plain: list[float] = []
        for _ in range(queries):
            started = time.perf_counter()
            query()
            listed.append(time.perf_counter() - started)
            started = time.perf_counter()
            baselines[key](rows)
            plain.append(time.perf_counter() - started)
        results[name] = {
            "rows": len(rows),
            "p50_ms": round(statistics.median(listed) * 1000, 3),
            "p99_ms": round(percentile(listed, 0.99) * 1000, 3),
            "select_p50_ms": round(statistics.median(plain) * 1000, 3),
            "select_p99_ms": round(percentile(plain, 0.99) * 1000, 3),
            "p99_ratio": round(percentile(listed, 0.99) / percentile(plain, 0.99), 2),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    database = fresh_database()
    started = time.perf_counter()
    populate(database, events(args.opportunities, args.customers, random.Random(7)))
    built = time.perf_counter() - started
    results = measure(database, args.queries)
    print(
        json.dumps(
            {
                "opportunities": args.opportunities,
                "customers": args.customers,
                "queries": args.queries,
                "read_model_built_seconds": round(built, 1),
                "cases": results,
                "worst_p99_ratio": max(r["p99_ratio"] for r in results.values()),
                "worst_p99_ms": max(r["p99_ms"] for r in results.values()),
            },
            indent=2,
        )
    )
    database.close()


if __name__ == "__main__":
    main()
