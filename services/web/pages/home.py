"""A seller's home: my deals, my stale deals, next steps, customers to visit, attainment."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from aggregates.funnel import STAGE_NAMES
from projections.monitoring import query_stale_deals
from projections.plans import query_plan_attainment
from services.database import Row
from services.web import queries
from services.web.deps import ViewerDep, WebContextDep
from services.web.guard import authorize
from services.web.rendering import PageRoute, render

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

STALE_AFTER_DAYS = 30
IDLE_NUDGE_DAYS = 14


def next_step(deal: Row, today: date, idle_days: int | None) -> str:
    """What the deal needs next, from its stage, qualification, close date and idleness."""
    if deal["qualification"] == "nurturing":
        return "with marketing for nurturing: qualify it again when the customer is ready"
    if deal["expected_close"] < today.isoformat():
        return "the expected close date has passed: revise it, or record the outcome"
    if idle_days is not None and idle_days >= IDLE_NUDGE_DAYS:
        return f"no activity for {idle_days} days: contact the customer"
    if deal["qualification"] == "pending":
        return "qualify it (urgency, timing, cycle, decision maker, budget) to reach stage 2"
    if int(deal["stage"]) == 7:
        return "negotiate the terms and record the win"
    return f"work stage {deal['stage']}: {STAGE_NAMES[int(deal['stage']) + 1]} is next"


@router.get("/")
def home(request: Request, viewer: ViewerDep, context: WebContextDep) -> Response:
    if not viewer.sells:
        return RedirectResponse("/web/pipeline", status_code=303)
    authorize(context.ledger, viewer, "GET /funnel")
    database, me = context.database, viewer.person_id
    now = datetime.now(UTC)
    deals = queries.open_deals_of(database, me)
    stale = query_stale_deals(database, days=STALE_AFTER_DAYS, owner_ids={me}, limit=50)
    idle = {d.opportunity_id: d.days_idle for d in stale.items}
    in_funnel = [d for d in deals if d["qualification"] != "nurturing"]
    steps = [
        {"deal": d, "step": next_step(d, now.date(), idle.get(str(d["opportunity_id"])))}
        for d in in_funnel
    ]
    names = queries.customer_names(database, {d.customer_id for d in stale.items})
    visit = sorted(names.items(), key=lambda item: item[1])
    return render(
        request,
        "home.html",
        viewer=viewer,
        page="home",
        version=queries.data_version(context.ledger, database),
        deals=deals,
        open_amount=sum(float(d["amount"]) for d in deals),
        stale=stale,
        stale_days=STALE_AFTER_DAYS,
        steps=steps[:15],
        visit=visit,
        attainment=attainment_of(context, me),
    )


def attainment_of(context: Any, person_id: str) -> list[dict[str, Any]]:
    """Plan nodes set for ``person_id`` (employee dimension): target, won, attainment."""
    lines = []
    subtree = context.ledger.organisation().subtree
    for plan in queries.plans(context.database):
        report = query_plan_attainment(context.database, str(plan["plan_id"]), subtree)
        for node in report.nodes:
            if node.dimensions.get("employee") == person_id and "revenue" in node.targets:
                lines.append(
                    {
                        "plan": report.name,
                        "path": node.path,
                        "period": node.period,
                        "target": node.targets["revenue"],
                        "actual": node.actuals["revenue"],
                        "attainment": node.attainment["revenue"],
                    }
                )
    return lines
