"""Erasure subcommand: ``erase`` a customer's personal data (crypto-shredding)."""

from __future__ import annotations

import argparse
from typing import Any

from aggregates.errors import DomainError
from aggregates.organisation import SYSTEM_ACTOR
from services.bootstrap import build_ledger


def register(subparsers: Any) -> None:
    erase = subparsers.add_parser(
        "erase",
        help="erase a customer's personal data for good: destroy its key, record the receipt",
    )
    erase.add_argument("customer_id")
    erase.add_argument("--reason", required=True, help="why (recorded; no personal data here)")
    erase.add_argument(
        "--by",
        default=SYSTEM_ACTOR,
        help=f"the admin asking for it, recorded as the actor (default {SYSTEM_ACTOR!r})",
    )
    erase.set_defaults(handler=_erase)


def _erase(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        result = ledger.erase_customer(args.customer_id, args.reason, actor=args.by)
    except DomainError as error:
        print(f"error: {error}")
        return 1
    print(
        f"erased the personal data of customer {result.aggregate_id}: its key is destroyed; "
        f"receipt at version {result.version} (position {result.position})"
    )
    return 0
