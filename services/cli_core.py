"""Core subcommands: init, token, history."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from aggregates.errors import DomainError, NotFoundError
from commands.ledger import SalesLedger
from services.bootstrap import build_ledger
from services.cli_audit import init_signing_key
from services.history import history_with_chain
from services.settings import Settings


def register(subparsers: Any) -> None:
    init = subparsers.add_parser("init", help="set up the organisation with its first admin")
    init.add_argument("--organisation", default="Demo Sales Co")
    init.add_argument("--admin", default="admin", help="the admin's person id")
    init.add_argument("--admin-name", default="Administrator")
    init.add_argument(
        "--exists-ok",
        action="store_true",
        help="succeed (doing nothing) if the organisation is already set up",
    )
    init.set_defaults(handler=_init)

    token = subparsers.add_parser("token", help="issue an API bearer token for a person")
    token.add_argument("person_id")
    token.set_defaults(handler=_token)

    history = subparsers.add_parser("history", help="print a deal's full history in order")
    history.add_argument("aggregate_id")
    history.add_argument("--as-of", type=datetime.fromisoformat, default=None)
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.set_defaults(handler=_history)

    register_demo(subparsers)


def _init(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    if args.exists_ok and _has_organisation(ledger):
        print("organisation already set up: nothing to do")
        return 0
    try:
        result = ledger.set_up_organisation(args.organisation, args.admin, args.admin_name)
    except DomainError as error:
        print(f"error: {error}")
        return 1
    print(f"organisation set up; admin is {args.admin!r} (position {result.position})")
    return init_signing_key(ledger, Settings())


def _has_organisation(ledger: SalesLedger) -> bool:
    try:
        ledger.organisation()
    except NotFoundError:
        return False
    return True


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
        entries = history_with_chain(ledger, args.aggregate_id, as_of=args.as_of)
    except DomainError as error:
        print(f"error: {error}")
        return 1
    for entry in entries:
        if args.json:
            print(json.dumps(entry, default=str))
        else:
            changes = ", ".join(f"{k}={v}" for k, v in entry["changes"].items())
            print(
                f"v{entry['version']:>3}  {entry['chain']:<8} {entry['timestamp']}  "
                f"{entry['actor']:<12} {entry['event_type']:<26} {changes}"
            )
    return 0


def register_demo(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="build a realistic demo data set and summarise it")
    demo.add_argument("--customers", type=int, default=400)
    demo.add_argument("--opportunities", type=int, default=3000)
    demo.add_argument("--days", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    import resource
    import time

    from services.demo import DemoBuilder

    ledger = build_ledger()
    if ledger.recorder.max_notification_id():
        print(
            "the store already holds events; use an empty store (LEDGER_SQLITE_PATH) for the demo"
        )
        return 1
    started = time.perf_counter()
    summary = DemoBuilder(
        ledger,
        customers=args.customers,
        opportunities=args.opportunities,
        days=args.days,
        seed=args.seed,
        progress=not args.quiet,
    ).build()
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"demo built in {elapsed:.1f} s ({summary.events / elapsed:.0f} events/s), "
        f"peak memory {peak_mb:.0f} MB"
    )
    print(f"  people         {summary.people}")
    print(f"  customers      {summary.customers}")
    print(
        f"  opportunities  {summary.opportunities}: {summary.won} won "
        f"({summary.won_amount:,} total), {summary.lost} lost or nurtured, {summary.open} open"
    )
    print("  open by stage  " + ", ".join(f"{s}: {n}" for s, n in sorted(summary.by_stage.items())))
    print(f"  plans          {summary.plans}, forecasts submitted {summary.forecasts}")
    print(
        f"  events stored  {summary.events}; "
        f"commands refused by the rules {summary.rejected_commands}"
    )
    print("try: salesledger history <opportunity-id>   or   salesledger serve")
    return 0
