"""What changed and why: pipeline changes between two dates as a waterfall (with the
Pipeline-Inspection flags), win/loss over a close period, and forecast-error forensics.

Each page computes its figures with the very functions the API's analytics routes call
(``services/api/routers/analytics.py``), over the same scope: the filter asked for
(``owners_in_scope``), narrowed to the deals the viewer may see one by one
(``services.access.visible_owners``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from aggregates.plan import period_bounds, period_level
from projections.field_history import FlagThresholds
from projections.forecast_errors import CAUSES, accuracy_over_periods
from projections.funnel import FunnelFilter
from projections.pipeline_changes import PipelineChanges, pipeline_changes
from projections.win_loss import DIMENSIONS
from services.access import sees_everything, visible_owners
from services.analytics.events import recorded_events
from services.analytics.queries import (
    forecast_error_forensics,
    pipeline_flags,
    win_loss_analysis,
)
from services.api.filters import owners_in_scope
from services.web import queries
from services.web.deps import ViewerDep, WebContextDep
from services.web.guard import PageError, authorize
from services.web.pages.pipeline import people_choices
from services.web.pages.records import parse_moment
from services.web.rendering import PageRoute, render
from services.web.session import Viewer

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

DEFAULT_WINDOW_DAYS = 7
RISE, FALL, TOTAL = "#1a7f37", "#c62828", "#0b57d0"
CAUSE_LABELS = {
    "amount_change": "amount changed",
    "slip": "slipped",
    "stage_regression": "stage regressed",
    "loss": "lost",
    "unforecast": "not forecast",
    "adjustment": "manager adjustment",
}
DIMENSION_LABELS = {
    "source": "source",
    "owner_id": "owner",
    "product": "product",
    "region": "region",
}


def visible_scope(
    context: Any,
    viewer: Viewer,
    owner: str | None = None,
    team: str | None = None,
    region: str | None = None,
    product: str | None = None,
    source: str | None = None,
    period: str | None = None,
) -> FunnelFilter:
    """The API's ``funnel_filter`` then ``visible_scope``: what was asked for, narrowed to
    the deals the viewer may see one by one (naming someone unseen is refused, 403)."""
    ledger = context.ledger
    bounds = period_bounds(period) if period else (None, None)
    owners = owners_in_scope(ledger, viewer.person_id, owner, team)
    owners = visible_owners(viewer.person_id, ledger.organisation(fresh=False), owners)
    return FunnelFilter(
        owner_ids=owners,
        region=region,
        product=product,
        source=source,
        close_from=bounds[0],
        close_to=bounds[1],
    )


def filter_values(viewer: Viewer, **given: str | None) -> dict[str, str | None]:
    """The filters as the form shows them (an empty field is no filter; ``me`` for an owner
    or a team is the viewer, as in the API)."""
    values = {name: (value or None) for name, value in given.items()}
    for name in ("owner", "team"):
        if values.get(name) == "me":
            values[name] = viewer.person_id
    return values


def window_moment(text: str | None, name: str, *, end: bool) -> datetime | None:
    """A window bound: a day (``from``: its start; ``to``: its end, the next midnight UTC)
    or an ISO 8601 moment (UTC unless it says otherwise)."""
    if not text:
        return None
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise PageError(422, f"{name}: not a date: {text!r}") from None
        return datetime.combine(day + timedelta(days=1 if end else 0), time.min, tzinfo=UTC)
    try:
        return parse_moment(text)
    except PageError:
        raise PageError(422, f"{name}: not a date or moment: {text!r}") from None


MEASURES = {"amount": "amount", "weighted": "weighted amount", "count": "number of deals"}
"""What the waterfall's bars measure (the table shows all three)."""


def waterfall(changes: PipelineChanges, measure: str = "amount") -> dict[str, Any]:
    """Start pipeline, every step with deals behind it, end pipeline: as floating bars
    ([low, high]) of ``measure``, with the change of each for the tooltip."""

    def of(item: Any) -> Decimal:
        if measure == "count":
            return Decimal(item.count)
        return Decimal(item.weighted_amount if measure == "weighted" else item.amount)

    labels, bars, deltas, colours = ["pipeline at start"], [], [], [TOTAL]
    level = of(changes.start)
    bars.append([0.0, float(level)])
    deltas.append(float(level))
    for step in changes.steps:
        if not step.deals:
            continue
        change = of(step)
        after = level + change
        labels.append(step.label)
        bars.append([float(min(level, after)), float(max(level, after))])
        deltas.append(float(change))
        colours.append(RISE if change > 0 else FALL if change < 0 else "#6e7781")
        level = after
    labels.append("pipeline at end")
    bars.append([0.0, float(of(changes.end))])
    deltas.append(float(of(changes.end)))
    colours.append(TOTAL)
    return {"labels": labels, "bars": bars, "deltas": deltas, "colours": colours}


@router.get("/changes")
def changes_page(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    from_text: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    owner: str | None = None,
    team: str | None = None,
    region: str | None = None,
    product: str | None = None,
    source: str | None = None,
    period: str | None = None,
    measure: str = "amount",
) -> Response:
    """``GET /pipeline/changes`` and ``GET /pipeline/flags`` for the viewer's scope."""
    if measure not in MEASURES:
        raise PageError(422, f"measure: one of {', '.join(MEASURES)}, not {measure!r}")
    authorize(context.ledger, viewer, "GET /pipeline/changes")
    authorize(context.ledger, viewer, "GET /pipeline/flags")
    filters = filter_values(
        viewer,
        owner=owner, team=team, region=region, product=product, source=source, period=period
    )
    scope = visible_scope(context, viewer, **filters)
    today = datetime.now(UTC).date()
    start = window_moment(from_text, "from", end=False)
    end = window_moment(to, "to", end=True)
    end = end or datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    start = start or end - timedelta(days=DEFAULT_WINDOW_DAYS)
    if end <= start:
        raise PageError(422, "to: the end of the window must be after its start (from)")
    ledger = context.ledger
    changes = pipeline_changes(recorded_events(ledger), start, end, scope)
    flags = pipeline_flags(ledger, scope, FlagThresholds())
    return render(
        request,
        "changes.html",
        viewer=viewer,
        page="changes",
        version=queries.data_version(ledger, context.database),
        changes=changes,
        chart=waterfall(changes, measure),
        measure=measure,
        measures=MEASURES,
        flags=flags,
        thresholds=FlagThresholds(),
        window={  # the days the date fields show (a moment in the URL: its day)
            "from": start.date().isoformat(),
            "to": (end - timedelta(microseconds=1)).date().isoformat(),
        },
        start=start,
        end=end,
        filters=filters,
        choices={**people_choices(viewer), **queries.filter_choices(context.database)},
    )


@router.get("/win-loss")
def win_loss_page(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    owner: str | None = None,
    team: str | None = None,
    region: str | None = None,
    product: str | None = None,
    source: str | None = None,
    period: str | None = None,
) -> Response:
    """``GET /win-loss`` for a close period (default: this year; empty: every closed deal)."""
    authorize(context.ledger, viewer, "GET /win-loss")
    if period is None:
        period = str(datetime.now(UTC).year)
    filters = filter_values(
        viewer,
        owner=owner, team=team, region=region, product=product, source=source, period=period
    )
    report = win_loss_analysis(context.ledger, visible_scope(context, viewer, **filters))
    by_owner = report.by["owner_id"]
    chart = {
        "labels": [o.key for o in by_owner],
        "series": [
            {"label": "won", "values": [o.won for o in by_owner]},
            {"label": "lost", "values": [o.lost for o in by_owner]},
        ],
    }
    reasons_chart = {
        "labels": [o.key or "(none)" for o in report.lost_reasons],
        "series": [{"label": "lost deals", "values": [o.lost for o in report.lost_reasons]}],
    }
    return render(
        request,
        "win_loss.html",
        viewer=viewer,
        page="win-loss",
        version=queries.data_version(context.ledger, context.database),
        report=report,
        chart=chart,
        reasons_chart=reasons_chart,
        dimensions=[(d, DIMENSION_LABELS[d]) for d in DIMENSIONS],
        filters={**filters, "period": period},
        choices={**people_choices(viewer), **queries.filter_choices(context.database)},
    )


def closed_periods(periods: list[str], today: date) -> list[str]:
    """The periods (latest first) that ended before today."""
    return [p for p in periods if period_bounds(p)[1] < today]


ACCURACY_PERIODS = 4


def accuracy_table(
    ledger: Any, periods: list[str], people: set[str] | None
) -> list[dict[str, Any]]:
    """``GET /forecast-accuracy`` over ``periods`` (forecasts as they stood at each end)."""
    reports = []
    for name in periods:
        end = datetime.combine(period_bounds(name)[1], time.max, tzinfo=UTC)
        reports.append(forecast_error_forensics(ledger, name, end, people))
    return [
        {"person_id": person, **entry}
        for person, entry in sorted(accuracy_over_periods(reports).items())
    ]


@router.get("/forecasts/errors")
def forecast_errors_page(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    period: str | None = None,
    as_of: str | None = None,
    accuracy: bool = False,
) -> Response:
    """``GET /forecasts/{period}/errors``: each person's forecast at a date against what
    happened, the error split by cause, deal by deal."""
    database, ledger = context.database, context.ledger
    today = datetime.now(UTC).date()
    periods = queries.forecast_periods(database)
    closed = closed_periods(periods, today)
    period = period or (closed[0] if closed else periods[0] if periods else str(today.year))
    authorize(ledger, viewer, "GET /forecasts/{period}/errors", {"period": period})
    period_level(period)
    moment = parse_moment(as_of) or datetime.now(UTC)
    org = ledger.organisation(fresh=False)
    people = None if sees_everything(viewer.person_id, org) else org.subtree(viewer.person_id)
    report = forecast_error_forensics(ledger, period, moment, people)
    over = sorted(closed[:ACCURACY_PERIODS])
    if accuracy:
        authorize(ledger, viewer, "GET /forecast-accuracy")
    deal_ids = {d.opportunity_id for p in report.people for d in p.deals}
    chart = {
        "stacked": True,
        "labels": [p.person_id for p in report.people],
        "series": [
            {
                "label": CAUSE_LABELS[cause],
                "values": [float(p.by_cause.get(cause, Decimal(0))) for p in report.people],
            }
            for cause in CAUSES
        ],
    }
    return render(
        request,
        "forecast_errors.html",
        viewer=viewer,
        page="forecasts",
        version=queries.data_version(ledger, database),
        report=report,
        chart=chart,
        causes=[(c, CAUSE_LABELS[c]) for c in CAUSES],
        cause_labels=CAUSE_LABELS,
        titles=queries.deal_titles(database, deal_ids),
        periods=closed or periods,
        period=period,
        closed=period_bounds(period)[1] < today,
        as_of=as_of or "",
        accuracy_periods=over,
        accuracy=accuracy_table(ledger, over, people) if accuracy and over else None,
    )
