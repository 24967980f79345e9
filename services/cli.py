"""The ``salesledger`` command. Each ``services/cli_*.py`` module adds its subcommands."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import services


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salesledger", description="The event-sourced sales-process ledger."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_info in sorted(pkgutil.iter_modules(services.__path__), key=lambda m: m.name):
        if module_info.name.startswith("cli_"):
            module = importlib.import_module(f"services.{module_info.name}")
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int | None = args.handler(args)
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
