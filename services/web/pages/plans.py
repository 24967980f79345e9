"""Plans: plan vs actual at every node of the decomposition, with attainment bars, and
the customer-resource plan (deals needed per stage against the live funnel)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from aggregates.plan import ROOT
from projections.plans import query_customer_resource_plan, query_plan_attainment
from services.web import queries
from services.web.deps import ViewerDep, WebContextDep
from services.web.guard import authorize
from services.web.rendering import PageRoute, render

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)


@router.get("/plans")
def plans_page(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    plan: str | None = None,
    path: str = ROOT,
) -> Response:
    database = context.database
    available = queries.plans(database)
    chosen = plan or (str(available[0]["plan_id"]) if available else None)
    values: dict[str, Any] = {"plans": available, "chosen": chosen, "path": path}
    if chosen is not None:
        ids = {"plan_id": chosen}
        authorize(context.ledger, viewer, "GET /plans/{plan_id}/attainment", ids)
        authorize(context.ledger, viewer, "GET /plans/{plan_id}/customer-resources", ids)
        subtree = context.ledger.organisation().subtree
        report = query_plan_attainment(database, chosen, subtree)
        revenue_paths = [n.path for n in report.nodes if "revenue" in n.targets]
        values.update(
            report=report,
            resources=query_customer_resource_plan(database, chosen, subtree, path),
            revenue_paths=revenue_paths,
        )
    return render(
        request,
        "plans.html",
        viewer=viewer,
        page="plans",
        version=queries.data_version(context.ledger, database),
        **values,
    )
