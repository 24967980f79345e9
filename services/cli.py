"""The ``salesledger`` command: every subcommand module, listed here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services import (
    cli_analytics,
    cli_audit,
    cli_core,
    cli_erasure,
    cli_import,
    cli_kafka,
    cli_ops,
    cli_parked,
    cli_people,
    cli_read,
    cli_transparency,
    cli_web,
)

COMMAND_MODULES = (
    cli_core,
    cli_read,
    cli_audit,
    cli_erasure,
    cli_transparency,
    cli_kafka,
    cli_people,
    cli_analytics,
    cli_import,
    cli_ops,
    cli_parked,
    cli_web,
)
"""Each module's ``register(subparsers)`` adds its subcommands, in this order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salesledger", description="The event-sourced sales-process ledger."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int | None = args.handler(args)
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
