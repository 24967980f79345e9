"""``salesledger parked``: the events a projection or the relay parked, and a retry."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from projections.parking import describe_error, parked_events, resolve
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.bootstrap import build_ledger
from services.database import Database
from services.read_store import open_read_store
from services.settings import Settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parked = subparsers.add_parser(
        "parked", help="events a projection or the relay could not process (dead letters)"
    )
    parked.add_argument(
        "--retry",
        action="store_true",
        help="apply each parked event again (after an upgrade); resolved ones are removed",
    )
    parked.set_defaults(handler=_parked)


def _parked(args: argparse.Namespace) -> int:
    settings = Settings()
    ledger = build_ledger(settings)
    database = open_read_store(settings)
    runner = ProjectionRunner(ledger, database, all_projections())
    with database.transaction() as tx:
        found = parked_events(tx)
    if not found:
        print("no parked events")
        return 0
    still = 0
    for event in found:
        if args.retry:
            error = _retry(runner, event.consumer, event.position, settings)
            if error is None:
                with database.transaction() as tx:
                    resolve(tx, event.consumer, event.position)
                print(f"{event.consumer}\t{event.position}\tresolved")
                continue
            print(f"{event.consumer}\t{event.position}\tstill parked: {error}")
        else:
            print(f"{event.consumer}\t{event.position}\t{event.parked_at}\t{event.error}")
        still += 1
    return 1 if still else 0


def _retry(
    runner: ProjectionRunner, consumer: str, position: int, settings: Settings
) -> str | None:
    """None if the parked event was processed this time, else why not."""
    try:
        if consumer in runner.names:
            runner.apply_again(consumer, position)
        else:
            from services.relay import republish_parked  # the relay needs kafka-python

            database = Database(settings)
            try:
                republish_parked(runner.ledger, database, settings, consumer, position)
            finally:
                database.close()
    except Exception as error:  # noqa: BLE001 - reported, the event stays parked
        return describe_error(error)
    return None
