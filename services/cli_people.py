"""People subcommands: a departure with a successor, and a manager's bulk reassignment."""

from __future__ import annotations

import argparse
from typing import Any

from aggregates.errors import DomainError
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.bootstrap import build_ledger
from services.holdings import holdings_of
from services.read_store import open_read_store
from services.settings import Settings


def register(subparsers: Any) -> None:
    reassign = subparsers.add_parser(
        "reassign", help="move all of a person's open deals and customers to a successor"
    )
    reassign.add_argument("person_id")
    reassign.add_argument("successor_id")
    reassign.add_argument("--reason", required=True)
    reassign.add_argument("--actor", required=True, help="the manager or admin doing it")
    reassign.add_argument(
        "--departure", action="store_true", help="the person also leaves (admins only)"
    )
    reassign.set_defaults(handler=_reassign)


def _reassign(args: argparse.Namespace) -> int:
    settings = Settings()
    ledger = build_ledger(settings)
    database = open_read_store(settings)
    try:
        ProjectionRunner(ledger, database, all_projections()).catch_up()
        holdings = holdings_of(database, args.person_id)
        result = ledger.transfer_holdings(
            args.person_id,
            args.successor_id,
            holdings.deal_ids,
            holdings.customer_ids,
            args.reason,
            departure=args.departure,
            actor=args.actor,
        )
    except DomainError as error:
        print(f"error: {error}")
        return 1
    finally:
        database.close()
        ledger.close()
    print(
        f"{len(holdings.deal_ids)} deals and {len(holdings.customer_ids)} customers of "
        f"{args.person_id} passed to {args.successor_id} (position {result.position})"
    )
    return 0
