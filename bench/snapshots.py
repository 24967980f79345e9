"""Loading a long deal, cold (a new process: nothing cached) and warm, with and without
snapshots, on PostgreSQL.

    python bench/snapshots.py [--events 10000]

In a throwaway database: one deal given ``--events`` activities through the command (a
snapshot every ``SNAPSHOT_INTERVAL`` events), then for each of "with snapshots" and
"without" (the same application with snapshotting off, so it replays every event) a new
application reads the deal twice: the first read is cold, the second warm.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregates.opportunity import Opportunity  # noqa: E402
from aggregates.organisation import Role  # noqa: E402
from bench.harness import fresh_database  # noqa: E402
from commands.ledger import SalesLedger  # noqa: E402
from services.settings import Settings  # noqa: E402


class _WithoutSnapshots(SalesLedger):
    name = "SalesLedger"
    is_snapshotting_enabled = False


def _long_deal(ledger: SalesLedger, events: int) -> str:
    ledger.set_up_organisation("Bench Co", "admin", "Admin")
    ledger.add_person("rep", "Rep", Role.SALES_REP, None, actor="admin")
    customer = ledger.register_customer(name="Long Co", source="web", actor="rep")
    deal = ledger.open_opportunity(
        customer_id=customer.aggregate_id, owner_id="rep", title="long", source="web",
        amount=Decimal("1000"), expected_close=date(2027, 1, 1), product="p", region="r",
        actor="rep",
    ).aggregate_id
    for _ in range(events):
        ledger.log_opportunity_activity(deal, "call", "followed up", actor="rep")
    return deal


def _reads(ledger: SalesLedger, deal: str) -> tuple[float, float]:
    ledger.organisation()
    began = time.perf_counter()
    ledger.read(Opportunity, deal)
    cold = time.perf_counter() - began
    began = time.perf_counter()
    ledger.read(Opportunity, deal)
    return cold * 1000, (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    with fresh_database("snapshots") as dbname:
        env = Settings(store="postgres", postgres_dbname=dbname).event_store_env()
        writer = SalesLedger(env=env)
        deal = _long_deal(writer, args.events)
        writer.close()
        for label, kind in (("with snapshots", SalesLedger), ("without", _WithoutSnapshots)):
            ledger = kind(env=env)
            cold, warm = _reads(ledger, deal)
            print(f"{label}: {args.events + 1} events, cold {cold:.2f} ms, warm {warm:.2f} ms")
            ledger.close()


if __name__ == "__main__":
    main()
