"""Sales plans: drafting, decomposition, revision, approval."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response

from aggregates.plan import ROOT, SalesPlan
from commands.models import (
    ApprovePlan,
    CommandAccepted,
    DecomposePlan,
    DraftPlan,
    ProposePlanTargets,
    RevisePlan,
)
from projections.plans import (
    CustomerResourcePlan,
    PlanAttainment,
    query_customer_resource_plan,
    query_plan_attainment,
)
from services.api.aggregate_views import AggregateState, aggregate_state, with_etag
from services.api.csv_export import Format, report_response
from services.api.dependencies import (
    ContextDep,
    DatabaseDep,
    IdempotencyKey,
    LedgerDep,
    accepted,
    fresh,
)
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.api.time_params import AsOf

router = LedgerRouter(prefix="/plans", tags=["plans"])


@router.post("", response_model=CommandAccepted, status_code=201)
def draft_plan(
    body: DraftPlan, context: ContextDep, actor: CurrentActor, command_id: IdempotencyKey = None
) -> CommandAccepted:
    """Draft a plan with targets for a period, for a unit (managers and admins)."""
    result = context.ledger.draft_plan(**body.model_dump(), actor=actor, command_id=command_id)
    return accepted(result, context)


@router.get("/{plan_id}", response_model=AggregateState)
def get_plan(
    plan_id: str, response: Response, ledger: LedgerDep, actor: CurrentActor, as_of: AsOf
) -> AggregateState:
    """A plan as it is now, or as it was at ``as_of``."""
    return with_etag(response, aggregate_state(ledger, SalesPlan, plan_id, as_of))


@router.post("/{plan_id}/decompositions", response_model=CommandAccepted, status_code=201)
def decompose_plan(
    plan_id: str,
    body: DecomposePlan,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Split a node's targets along a dimension; the parts must sum to the parent."""
    result = context.ledger.decompose_plan(
        plan_id, body.parent, body.dimension, body.allocations, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{plan_id}/revisions", response_model=CommandAccepted, status_code=201)
def revise_plan(
    plan_id: str,
    body: RevisePlan,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Revise targets at several nodes at once, bottom-up or top-down, with a reason."""
    result = context.ledger.revise_plan(
        plan_id, body.changes, body.direction, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{plan_id}/proposals", response_model=CommandAccepted, status_code=201)
def propose_plan_targets(
    plan_id: str,
    body: ProposePlanTargets,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Bottom-up: propose the targets of your own node (a planner adopts them in a revision)."""
    result = context.ledger.propose_plan_targets(
        plan_id, body.path, body.targets, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{plan_id}/approval", response_model=CommandAccepted)
def approve_plan(
    plan_id: str,
    body: ApprovePlan,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Approve the plan (managers and admins)."""
    result = context.ledger.approve_plan(plan_id, body.note, actor=actor, command_id=command_id)
    return accepted(result, context)


@router.get(
    "/{plan_id}/attainment", response_model=PlanAttainment, dependencies=[Depends(fresh("plans"))]
)
def get_plan_attainment(
    plan_id: str,
    request: Request,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    format: Format = None,
) -> Any:
    """Plan vs actual at every node: product, customer, region, department, employee, period."""
    organisation = ledger.organisation()
    attainment = query_plan_attainment(database, plan_id, organisation.subtree)
    return report_response(request, ledger, actor, format, attainment)


@router.get(
    "/{plan_id}/customer-resources",
    response_model=CustomerResourcePlan,
    dependencies=[Depends(fresh("plans"))],
)
def get_customer_resource_plan(
    plan_id: str,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    request: Request,
    path: Annotated[str, Query(examples=["total/region=east"])] = ROOT,
    format: Format = None,
) -> Any:
    """Deals needed at each stage now to reach the remaining target, vs the live funnel."""
    organisation = ledger.organisation()
    needed = query_customer_resource_plan(database, plan_id, organisation.subtree, path)
    return report_response(request, ledger, actor, format, needed)
