"""The write cost of encrypting personal data, as a ratio to the plain path, in one run.

Two ledgers on the same fresh PostgreSQL database (or SQLite file with ``--store
sqlite``), alternating rounds so the ratio holds on a noisy machine: the ledger as it is
(personal fields encrypted under the customer's key, claims as keyed digests) and the
same ledger with a plain mapper (personal fields stored as they are; the bench's own
``PlainMapper``, nothing switched off in the ledger). Two commands:

- ``activity``: log an activity (its summary is personal) on the client's own customer:
  the key is cached, so this is AES-GCM and the wrapping;
- ``register``: register a new customer: a new key is made and stored first (one more
  round trip to the key table), then five personal fields encrypted.

    python -m bench.erasure --seconds 5 --rounds 3
    python -m bench.erasure --store sqlite

Connection settings come from POSTGRES_* (``eval "$(scripts/postgres env)"``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from aggregates.organisation import Role
from bench.harness import fresh_database, ledger_env
from commands.application import CheckedMapper
from commands.ledger import SalesLedger
from events.limits import check_encoded_size, check_event
from services.settings import Settings


class PlainMapper(CheckedMapper):
    """The ledger's mapper without the personal-data wrapping: today's path before it."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        check_event(domain_event)
        stored = Mapper.to_stored_event(self, domain_event)
        check_encoded_size(domain_event, stored.state)
        return stored


class PlainLedger(SalesLedger):
    """The ledger storing personal fields as they are (for comparison only)."""

    name = "SalesLedger"  # the same tables

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=PlainMapper)


Command = Callable[[SalesLedger, str, int], None]


def log_activity(ledger: SalesLedger, customer_id: str, n: int) -> None:
    ledger.log_customer_activity(
        customer_id, "call", f"called Li Na about the renewal ({n})", actor="rep"
    )


_serial = itertools.count(1)


def register(ledger: SalesLedger, customer_id: str, n: int) -> None:
    tag, serial = uuid.uuid4().hex[:12], next(_serial)
    ledger.register_customer(
        name=f"Li Na Consulting {tag}",
        source="web",
        phone=f"+86 139 {serial:08d}",
        email=f"li.na.{tag}@example.cn",
        owner_id="rep",
        profile={"address": f"{n} Huaihai Road", "region": "east"},
        actor="rep",
    )


COMMANDS: dict[str, Command] = {"activity": log_activity, "register": register}


def timed(
    ledger: SalesLedger, customer_id: str, command: Command, seconds: float
) -> tuple[int, float]:
    """Commands run in ``seconds``, and the time they took."""
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        command(ledger, customer_id, count)
        count += 1
    return count, time.perf_counter() - started


def compare(
    sides: dict[str, tuple[SalesLedger, str]], command: Command, seconds: float, slices: int
) -> tuple[dict[str, float], list[float]]:
    """Each side's rate (commands/s) over ``slices`` alternating slices of ``seconds``
    (ABBA order, so that neither side always runs first, and a change in the machine's
    load falls on both), and the per-slice-pair costs of encryption."""
    for ledger, customer_id in sides.values():
        timed(ledger, customer_id, command, 0.3)  # warm-up
    totals = {name: [0, 0.0] for name in sides}
    costs = []
    for n in range(slices):
        order = list(sides) if n % 2 == 0 else list(reversed(sides))
        rates = {}
        for name in order:
            count, spent = timed(*sides[name], command, seconds)
            totals[name][0] += count
            totals[name][1] += spent
            rates[name] = count / spent
        costs.append(rates["plain"] / rates["encrypted"] - 1)
    return {name: count / spent for name, (count, spent) in totals.items()}, costs


@contextlib.contextmanager
def store_env(store: str) -> Iterator[dict[str, str]]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "bench.db"
            yield Settings(store="sqlite", sqlite_path=str(path)).event_store_env()
    else:
        with fresh_database("erasure") as dbname:
            yield ledger_env(dbname)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="one slice of one side")
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    with store_env(args.store) as env:
        encrypted = SalesLedger(env=env)
        encrypted.set_up_organisation("Bench Co", "admin", "Admin")
        encrypted.add_person("rep", "Rep", Role.SALES_REP, None, actor="admin")
        plain = PlainLedger(env=env)
        sides = {
            name: (
                ledger,
                ledger.register_customer(
                    name=f"Customer {name}", source="web", owner_id="rep", actor="rep"
                ).aggregate_id,
            )
            for name, ledger in (("plain", plain), ("encrypted", encrypted))
        }
        print(
            f"{args.store}, one client, {args.slices} alternating slices of "
            f"{args.seconds:g} s per side"
        )
        print(f"{'command':>9} {'plain/s':>9} {'encrypted/s':>12} {'cost':>7} {'median':>7}")
        for name, command in COMMANDS.items():
            rates, costs = compare(sides, command, args.seconds, args.slices)
            cost = rates["plain"] / rates["encrypted"] - 1
            print(
                f"{name:>9} {rates['plain']:>9.0f} {rates['encrypted']:>12.0f} "
                f"{cost:>+7.1%} {statistics.median(costs):>+7.1%}"
            )
        print("cost: extra time per command with encryption (all slices; median of pairs)")
        encrypted.close()
        plain.close()


if __name__ == "__main__":
    main()
