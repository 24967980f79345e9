"""Forecasts: the management chain as a tree with each level's figures, and the trend of
what was believed on each date of the period."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from aggregates.forecast import CATEGORIES
from aggregates.plan import period_bounds, period_level
from aggregates.visibility import visible_people
from projections.forecasts import ForecastReport, PersonForecast, query_forecast_report
from projections.plans import NodeAttainment, query_plan_attainment
from services.web import queries
from services.web.deps import ViewerDep, WebContextDep
from services.web.guard import authorize
from services.web.pages.records import parse_moment
from services.web.rendering import PageRoute, render

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

TREND_POINTS = 14


def trend(database: Any, period: str, managers: dict[str, str | None]) -> dict[str, Any]:
    """The top-level forecast as it stood at evenly spaced moments of the period (to today)."""
    start, end = period_bounds(period)
    first = datetime.combine(start, time.min, tzinfo=UTC)
    last = min(datetime.combine(end, time.max, tzinfo=UTC), datetime.now(UTC))
    if last <= first:
        last = first + timedelta(days=1)
    step = (last - first) / (TREND_POINTS - 1)
    moments = [first + step * i for i in range(TREND_POINTS)]
    reports = [query_forecast_report(database, period, managers, m) for m in moments]
    return {
        "labels": [m.date().isoformat() for m in moments],
        "series": [
            {
                "label": "adjusted forecast",
                "values": [float(r.top_level_adjusted) for r in reports],
            },
            {"label": "as submitted", "values": [float(r.top_level_unadjusted) for r in reports]},
        ],
    }


def quotas(context: Any, period: str) -> dict[str, NodeAttainment]:
    """Each person's revenue quota: the plan node set for them (employee, or department for a
    manager) for this period, else for the period containing it, with its attainment."""
    start, end = period_bounds(period)
    found: dict[str, tuple[int, NodeAttainment]] = {}
    subtree = context.ledger.organisation().subtree
    for plan in queries.plans(context.database):
        report = query_plan_attainment(context.database, str(plan["plan_id"]), subtree)
        for node in report.nodes:
            person = node.dimensions.get("employee") or node.dimensions.get("department")
            if person is None or "revenue" not in node.targets:
                continue
            node_start, node_end = period_bounds(node.period)
            if not (node_start <= start and end <= node_end):
                continue
            rank = 0 if node.period == period else 1
            if person not in found or rank < found[person][0]:
                found[person] = (rank, node)
    return {person: node for person, (_, node) in found.items()}


def tree(report: ForecastReport) -> list[dict[str, Any]]:
    """The report's people nested under their managers (roots: no manager in the report)."""
    by_id = {p.person_id: p for p in report.people}
    children: dict[str | None, list[PersonForecast]] = {}
    for person in report.people:
        parent = person.manager_id if person.manager_id in by_id else None
        children.setdefault(parent, []).append(person)

    def node(person: PersonForecast, seen: frozenset[str]) -> dict[str, Any]:
        below = [c for c in children.get(person.person_id, []) if c.person_id not in seen]
        return {"p": person, "children": [node(c, seen | {c.person_id}) for c in below]}

    return [node(p, frozenset({p.person_id})) for p in children.get(None, [])]


@router.get("/forecasts")
def forecasts(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    period: str | None = None,
    as_of: str | None = None,
) -> Response:
    database = context.database
    periods = queries.forecast_periods(database)
    period = period or (periods[0] if periods else f"{datetime.now(UTC).year}")
    authorize(context.ledger, viewer, "GET /forecasts/{period}", {"period": period})
    period_level(period)
    moment = parse_moment(as_of)
    organisation = context.ledger.organisation()
    managers = {p.person_id: p.manager_id for p in organisation.people.values()}
    in_view = visible_people(viewer.person_id, organisation)
    report = query_forecast_report(database, period, managers, moment, in_view)
    return render(
        request,
        "forecasts.html",
        viewer=viewer,
        page="forecasts",
        version=queries.data_version(context.ledger, database),
        report=report,
        roots=tree(report),
        periods=periods,
        period=period,
        as_of=as_of or "",
        trend=trend(database, period, managers),
        quotas=quotas(context, period),
        categories=[(c, c.replace("_", " ")) for c in CATEGORIES],
    )
