"""Dashboard subcommands: signin-link (a one-time link that signs a person in)."""

from __future__ import annotations

import argparse
from typing import Any

from aggregates.errors import DomainError
from services.bootstrap import build_ledger
from services.web.session import issue_sign_in_link


def register(subparsers: Any) -> None:
    link = subparsers.add_parser(
        "signin-link", help="print a one-time link that signs a person in to the dashboard"
    )
    link.add_argument("person_id", nargs="+")
    link.add_argument("--base-url", default="http://127.0.0.1:8000")
    link.set_defaults(handler=_signin_link)


def _signin_link(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    for person_id in args.person_id:
        try:
            url = issue_sign_in_link(ledger, person_id, args.base_url)
        except DomainError as error:
            print(f"error: {error}")
            return 1
        print(f"{person_id}: {url}")
    return 0
