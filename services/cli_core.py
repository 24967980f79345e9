"""Core subcommands: init, token, history."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from aggregates.errors import DomainError
from services.bootstrap import build_ledger
from services.history import deal_history


def register(subparsers: Any) -> None:
    init = subparsers.add_parser("init", help="set up the organisation with its first admin")
    init.add_argument("--organisation", default="Demo Sales Co")
    init.add_argument("--admin", default="admin", help="the admin's person id")
    init.add_argument("--admin-name", default="Administrator")
    init.set_defaults(handler=_init)

    token = subparsers.add_parser("token", help="issue an API bearer token for a person")
    token.add_argument("person_id")
    token.set_defaults(handler=_token)

    history = subparsers.add_parser("history", help="print a deal's full history in order")
    history.add_argument("aggregate_id")
    history.add_argument("--as-of", type=datetime.fromisoformat, default=None)
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.set_defaults(handler=_history)


def _init(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        result = ledger.set_up_organisation(args.organisation, args.admin, args.admin_name)
    except DomainError as error:
        print(f"error: {error}")
        return 1
    print(f"organisation set up; admin is {args.admin!r} (position {result.position})")
    return 0


def _token(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        token_id, token = ledger.issue_token(args.person_id, actor="system")
    except DomainError as error:
        print(f"error: {error}")
        return 1
    print(f"token id {token_id} for {args.person_id}:\n{token}")
    return 0


def _history(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        entries = deal_history(ledger, args.aggregate_id, as_of=args.as_of)
    except DomainError as error:
        print(f"error: {error}")
        return 1
    for entry in entries:
        if args.json:
            print(json.dumps(entry, default=str))
        else:
            changes = ", ".join(f"{k}={v}" for k, v in entry["changes"].items())
            print(f"v{entry['version']:>3}  {entry['timestamp']}  {entry['actor']:<12} "
                  f"{entry['event_type']:<26} {changes}")
    return 0
