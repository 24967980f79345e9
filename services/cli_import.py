"""Import subcommands: import (CSV files from another CRM) and export-crm (the same shape)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from aggregates.errors import DomainError
from services.bootstrap import build_ledger
from services.importing.crm import describe, run_import
from services.importing.export import export_crm


def register(subparsers: Any) -> None:
    importing = subparsers.add_parser(
        "import", help="import customers, opportunities and opportunity history (CSV)"
    )
    importing.add_argument("--actor", required=True, help="the admin who imports")
    importing.add_argument("--customers", type=Path)
    importing.add_argument("--opportunities", type=Path)
    importing.add_argument("--history", type=Path, help="OpportunityHistory-shaped CSV")
    importing.add_argument(
        "--dry-run", action="store_true", help="check every row, write nothing, report"
    )
    importing.add_argument("--quiet", action="store_true", help="no progress bars")
    importing.set_defaults(handler=_import)

    export = subparsers.add_parser(
        "export-crm", help="write the ledger as the CSV files `import` reads"
    )
    export.add_argument("folder", type=Path)
    export.set_defaults(handler=_export)


def _import(args: argparse.Namespace) -> int:
    files = {
        kind: path
        for kind, path in (
            ("customers", args.customers),
            ("opportunities", args.opportunities),
            ("history", args.history),
        )
        if path is not None
    }
    if not files:
        print("error: give at least one of --customers, --opportunities, --history")
        return 2
    started = time.perf_counter()
    try:
        reports = run_import(
            build_ledger(), args.actor, files, dry_run=args.dry_run, progress=not args.quiet
        )
    except (DomainError, OSError) as error:
        print(f"error: {error}")
        return 1
    elapsed = time.perf_counter() - started
    for report in reports:
        for line in describe(report):
            print(line)
    rows = sum(r.rows for r in reports)
    print(f"{rows} rows in {elapsed:.1f} s ({rows / elapsed:.0f} rows/s)")
    return 1 if any(r.problems for r in reports) else 0


def _export(args: argparse.Namespace) -> int:
    for kind, path in export_crm(build_ledger(), args.folder).items():
        print(f"{kind}: {path}")
    return 0
