"""Analytics subcommands: changes (the pipeline waterfall), field-history, flags."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aggregates.errors import DomainError
from aggregates.plan import period_bounds
from projections.field_history import FlagThresholds
from projections.forecast_errors import accuracy_over_periods
from projections.funnel import FunnelFilter
from projections.pipeline_changes import PipelineChanges, pipeline_changes
from services.analytics.events import recorded_events
from services.analytics.queries import (
    field_history,
    forecast_error_forensics,
    pipeline_flags,
    win_loss_analysis,
)
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

    history = subparsers.add_parser(
        "field-history", help="every field change of an aggregate: old → new, who, when, why"
    )
    history.add_argument("aggregate_id")
    history.add_argument("--field", help="one field (or its keys, e.g. team)")
    add_threshold_arguments(history)
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=_field_history)

    flags = subparsers.add_parser("flags", help="deals flagged as Pipeline Inspection would")
    add_scope_arguments(flags)
    add_threshold_arguments(flags)
    flags.add_argument("--include-closed", action="store_true")
    flags.add_argument("--json", action="store_true")
    flags.set_defaults(handler=_flags)

    analysis = subparsers.add_parser(
        "win-loss", help="lost reasons, competitors, stage lost at; won/lost by source, owner…"
    )
    add_scope_arguments(analysis)
    analysis.add_argument("--json", action="store_true")
    analysis.set_defaults(handler=_win_loss)

    errors = subparsers.add_parser(
        "forecast-errors", help="forecasts at a date against what happened, split per deal"
    )
    errors.add_argument("periods", nargs="+", help="closed periods, e.g. 2026-Q1 2026-Q2")
    errors.add_argument("--as-of", type=datetime.fromisoformat, help="default: now")
    errors.add_argument("--deals", action="store_true", help="list every deal's part")
    errors.add_argument("--json", action="store_true")
    errors.set_defaults(handler=_forecast_errors)


def add_threshold_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FlagThresholds()
    parser.add_argument("--pushed-times", type=int, default=defaults.pushed_times)
    parser.add_argument("--amount-drop-percent", type=Decimal, default=defaults.amount_drop_percent)
    parser.add_argument("--idle-days", type=int, default=defaults.idle_days)


def thresholds_of(args: argparse.Namespace) -> FlagThresholds:
    return FlagThresholds(args.pushed_times, args.amount_drop_percent, args.idle_days)


def _field_history(args: argparse.Namespace) -> int:
    try:
        report = field_history(build_ledger(), args.aggregate_id, args.field, thresholds_of(args))
    except DomainError as error:
        print(f"error: {error}")
        return 1
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    for change in report.changes:
        why = f"  ({change.reason})" if change.reason else ""
        print(
            f"v{change.version:>3} {change.at.isoformat()} {change.actor:<12} "
            f"{change.field}: {change.old} → {change.new}{why}"
        )
    if report.flags is not None:
        print(f"flags: {', '.join(report.flags.flags) or 'none'}")
    return 0


def _flags(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        found = pipeline_flags(
            ledger, scope_of(args, ledger), thresholds_of(args), open_only=not args.include_closed
        )
    except DomainError as error:
        print(f"error: {error}")
        return 1
    for deal in found:
        print(
            deal.model_dump_json()
            if args.json
            else f"{deal.opportunity_id}  {deal.owner_id:<12} "
            f"{', '.join(deal.flags)}  (pushed {deal.pushed_times}×, "
            f"down {deal.amount_drop_percent} %, close {deal.expected_close})"
        )
    return 0


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


def _win_loss(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        report = win_loss_analysis(ledger, scope_of(args, ledger))
    except DomainError as error:
        print(f"error: {error}")
        return 1
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    sections = {
        "lost reasons": report.lost_reasons,
        "competitors": report.competitors,
        "lost at stage": report.lost_at_stage,
        **{f"by {name}": found for name, found in report.by.items()},
    }
    print(
        f"closed: {report.total.won} won, {report.total.lost} lost, "
        f"win rate {report.total.win_rate}"
    )
    for title, found in sections.items():
        print(title)
        for outcome in found:
            print(
                f"  {outcome.key or '(none)':<28} won {outcome.won:>5}  lost {outcome.lost:>5}  "
                f"win rate {outcome.win_rate}"
            )
    return 0


def _forecast_errors(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    moment = args.as_of or datetime.now(UTC)
    try:
        reports = [forecast_error_forensics(ledger, p, moment) for p in args.periods]
    except DomainError as error:
        print(f"error: {error}")
        return 1
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
        return 0
    for report in reports:
        print(f"{report.period} as forecast at {report.as_of.isoformat()}")
        for person in report.people:
            causes = ", ".join(f"{k} {v}" for k, v in person.by_cause.items() if v)
            print(
                f"  {person.person_id:<14} forecast {person.forecast:>12} actual "
                f"{person.actual:>12} error {person.error:>12} accuracy {person.accuracy}  {causes}"
            )
            for deal in person.deals if args.deals else ():
                print(f"      {deal.opportunity_id} {deal.cause:<17} {deal.error}")
    print("accuracy per person over the periods")
    for person_id, entry in sorted(accuracy_over_periods(reports).items()):
        print(
            f"  {person_id:<14} {entry['periods']}  mean |error| {entry['mean_absolute_error']:.2f}"
        )
    return 0
