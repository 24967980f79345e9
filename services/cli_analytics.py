"""Analytics subcommands: changes (the pipeline waterfall between two moments)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from aggregates.errors import DomainError
from aggregates.plan import period_bounds
from projections.funnel import FunnelFilter
from projections.pipeline_changes import PipelineChanges, pipeline_changes
from services.analytics.events import recorded_events
from services.bootstrap import build_ledger


def add_scope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner", help="primary owner's person id")
    parser.add_argument("--team", help="a manager: their whole subtree")
    parser.add_argument("--region")
    parser.add_argument("--product")
    parser.add_argument("--source")
    parser.add_argument("--close-period", help="2026, 2026-Q2, 2026-05, 2026-W20 or a day")


def scope_of(args: argparse.Namespace, ledger: Any) -> FunnelFilter:
    owners: set[str] | None = None
    if args.team:
        owners = ledger.organisation().subtree(args.team)
    if args.owner:
        owners = {args.owner} if owners is None else owners & {args.owner}
    low, high = period_bounds(args.close_period) if args.close_period else (None, None)
    return FunnelFilter(
        owner_ids=owners,
        region=args.region,
        product=args.product,
        source=args.source,
        close_from=low,
        close_to=high,
    )


def register(subparsers: Any) -> None:
    changes = subparsers.add_parser(
        "changes", help="what changed in the pipeline between two moments (a waterfall)"
    )
    changes.add_argument("--from", dest="start", required=True, type=datetime.fromisoformat)
    changes.add_argument("--to", dest="end", required=True, type=datetime.fromisoformat)
    add_scope_arguments(changes)
    changes.add_argument("--deals", action="store_true", help="list the deals of every step")
    changes.add_argument("--json", action="store_true", help="the whole report as JSON")
    changes.set_defaults(handler=_changes)


def _changes(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        report = pipeline_changes(
            recorded_events(ledger), args.start, args.end, scope_of(args, ledger)
        )
    except (DomainError, ValueError) as error:
        print(f"error: {error}")
        return 1
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print_waterfall(report, with_deals=args.deals)
    return 0


def print_waterfall(report: PipelineChanges, *, with_deals: bool) -> None:
    row = "{:<42} {:>7} {:>16} {:>16}"
    print(row.format("", "count", "amount", "weighted"))
    print(row.format(f"pipeline at {report.from_moment.isoformat()}", *_figures(report.start)))
    for step in report.steps:
        if not step.deals:
            continue
        print(row.format(f"  {step.label}", *_figures(step)))
        for deal in step.deals if with_deals else ():
            print(f"      {deal.opportunity_id}  {deal.owner_id:<12} {deal.detail}")
    print(row.format(f"pipeline at {report.to_moment.isoformat()}", *_figures(report.end)))
    print(f"reconciled: {'yes' if report.reconciled else 'NO'}")
    pushes = sum(m.times for m in report.pushed)
    print(f"pushed: {len(report.pushed)} deals, {pushes} times; pulled in: {len(report.pulled_in)}")
    print(f"owner changes: {len(report.owner_changes)}")


def _figures(totals: Any) -> tuple[str, str, str]:
    return (
        json.dumps(totals.count),
        f"{totals.amount:,.2f}",
        f"{totals.weighted_amount:,.2f}",
    )
