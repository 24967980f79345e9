"""The pipeline board: open deals by stage with health colours, filters, the funnel chart,
and moving a deal to another stage (with the reason the rule asks for)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from aggregates.errors import DomainError
from aggregates.funnel import LAST_OPEN_STAGE, STAGE_NAMES
from aggregates.organisation import Role
from aggregates.plan import period_bounds
from commands.errors import status_for
from projections.funnel import FunnelFilter, query_funnel, query_funnel_health
from services.api.dependencies import accepted
from services.api.filters import configuration_in_force, owners_in_scope
from services.web import queries
from services.web.deps import FormViewerDep, ViewerDep, WebContextDep, safe_next
from services.web.guard import authorize
from services.web.rendering import PageRoute, render
from services.web.session import Viewer

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

HEALTH_COLOURS = {
    "excellent": "#1a7f37",
    "good": "#b58100",
    "warning": "#c62828",
    "no history": "#6e7781",
}


def scoped_filter(
    context: WebContextDep,
    viewer: Viewer,
    owner: str | None,
    team: str | None,
    region: str | None,
    product: str | None,
    period: str | None,
) -> FunnelFilter:
    """The board's filter, never wider than the deals the viewer may see."""
    owners = owners_in_scope(context.ledger, viewer.person_id, owner, team)
    visible = viewer.visible_owners()
    if visible is not None:
        owners = visible if owners is None else owners & visible
    start, end = period_bounds(period) if period else (None, None)
    return FunnelFilter(
        owner_ids=owners, region=region, product=product, close_from=start, close_to=end
    )


def people_choices(viewer: Viewer) -> dict[str, list[Any]]:
    """Whom the viewer may filter by: sellers and managers within their scope."""
    visible = viewer.visible_owners()
    people = [
        p
        for p in sorted(viewer.org.people.values(), key=lambda p: p.person_id)
        if p.active and (visible is None or p.person_id in visible)
    ]
    return {
        "owners": [p for p in people if p.role in (Role.SALES_REP, Role.MANAGER)],
        "teams": [p for p in people if p.role == Role.MANAGER],
    }


@router.get("/pipeline")
def pipeline(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    owner: str | None = None,
    team: str | None = None,
    region: str | None = None,
    product: str | None = None,
    period: str | None = None,
) -> Response:
    authorize(context.ledger, viewer, "GET /funnel")
    filters = {"owner": owner, "team": team, "region": region, "product": product}
    filters = {k: v or None for k, v in {**filters, "period": period}.items()}
    selection = scoped_filter(context, viewer, **filters)
    database = context.database
    probabilities = configuration_in_force(context.ledger).probabilities()
    funnel = query_funnel(database, selection, probabilities)
    health = {s.stage: s for s in query_funnel_health(database, selection).stages}
    cards = queries.board_cards(database, selection)
    columns = [
        {
            "stage": s,
            "health": health[s.stage],
            "colour": HEALTH_COLOURS[health[s.stage].label],
            "cards": cards.get(s.stage, []),
        }
        for s in funnel.stages[:LAST_OPEN_STAGE]
    ]
    chart = {
        "labels": [f"{s.stage}. {s.name}" for s in funnel.stages[:LAST_OPEN_STAGE]],
        "amounts": [float(s.amount) for s in funnel.stages[:LAST_OPEN_STAGE]],
        "counts": [s.count for s in funnel.stages[:LAST_OPEN_STAGE]],
        "colours": [c["colour"] for c in columns],
    }
    return render(
        request,
        "pipeline.html",
        viewer=viewer,
        page="pipeline",
        version=queries.data_version(context.ledger, database),
        funnel=funnel,
        columns=columns,
        chart=chart,
        filters=filters,
        choices={**people_choices(viewer), **queries.filter_choices(database)},
        stage_names=STAGE_NAMES,
        last_open_stage=LAST_OPEN_STAGE,
    )


@router.post("/deals/{opportunity_id}/stage")
def move_stage(
    request: Request,
    opportunity_id: str,
    viewer: FormViewerDep,
    context: WebContextDep,
    to_stage: Annotated[int, Form(ge=1, le=LAST_OPEN_STAGE)],
    reason: Annotated[str, Form(max_length=500)] = "",
    back: Annotated[str, Form(max_length=2000)] = "/web/pipeline",
) -> Response:
    """Record the move as the API's ``POST /opportunities/{id}/stage`` does."""
    wants_json = request.headers.get("accept", "").startswith("application/json")
    authorize(
        context.ledger,
        viewer,
        "POST /opportunities/{opportunity_id}/stage",
        {"opportunity_id": opportunity_id},
    )
    try:
        result = context.ledger.advance_stage(
            opportunity_id, to_stage, reason.strip() or None, actor=viewer.person_id
        )
    except DomainError as error:
        if not wants_json:
            raise
        return JSONResponse({"message": str(error)}, status_code=int(status_for(error)))
    done = accepted(result, context)
    if wants_json:
        return JSONResponse({"position": done.position, "version": done.version})
    return RedirectResponse(safe_next(back), status_code=303)
