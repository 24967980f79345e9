"""Opportunities: opening, qualification, evaluation, stages, team, value, outcome."""

from __future__ import annotations

from fastapi import Request, Response

from aggregates.opportunity import Opportunity
from commands.models import (
    AddTeamMember,
    AdvanceStage,
    ChangePrimaryOwner,
    CommandAccepted,
    DisqualifyOpportunity,
    EvaluateOpportunity,
    LogOpportunityActivity,
    LoseOpportunity,
    OpenOpportunity,
    QualifyOpportunity,
    RecordBidDetails,
    RemoveTeamMember,
    ReopenOpportunity,
    ReviseAmount,
    ReviseCloseDate,
    WinOpportunity,
)
from services.api.aggregate_views import (
    AggregateState,
    aggregate_state,
    checked_record,
    with_etag,
)
from services.api.dependencies import ContextDep, IdempotencyKey, LedgerDep, accepted
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.api.time_params import AsOf

router = LedgerRouter(prefix="/opportunities", tags=["opportunities"])


@router.post("", response_model=CommandAccepted, status_code=201)
def open_opportunity(
    body: OpenOpportunity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Open an opportunity at stage 1 for a customer."""
    result = context.ledger.open_opportunity(
        **body.model_dump(), actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.get("/{opportunity_id}", response_model=AggregateState)
def get_opportunity(
    opportunity_id: str,
    request: Request,
    response: Response,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: AsOf,
) -> AggregateState:
    """An opportunity as it is now, or as it was at ``as_of``."""
    return with_etag(response, aggregate_state(
        ledger, Opportunity, opportunity_id, as_of, checked_record(request, opportunity_id)
    ))


@router.post("/{opportunity_id}/qualification", response_model=CommandAccepted)
def qualify_opportunity(
    opportunity_id: str,
    body: QualifyOpportunity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Qualify: every criterion (urgency, timing, cycle, decision maker, budget) is met."""
    result = context.ledger.qualify_opportunity(
        opportunity_id, body.criteria, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/disqualification", response_model=CommandAccepted)
def disqualify_opportunity(
    opportunity_id: str,
    body: DisqualifyOpportunity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Send back to marketing for nurturing (stages 1–2 only)."""
    result = context.ledger.disqualify_opportunity(
        opportunity_id, body.criteria, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/evaluation", response_model=CommandAccepted)
def evaluate_opportunity(
    opportunity_id: str,
    body: EvaluateOpportunity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Record the 20-question value evaluation (above 10 points: high value)."""
    result = context.ledger.evaluate_opportunity(
        opportunity_id, body.answers, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/stage", response_model=CommandAccepted)
def advance_stage(
    opportunity_id: str,
    body: AdvanceStage,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Move to another open stage (1–7); moving back needs a reason."""
    result = context.ledger.advance_stage(
        opportunity_id, body.to_stage, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/owner", response_model=CommandAccepted)
def change_primary_owner(
    opportunity_id: str,
    body: ChangePrimaryOwner,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Change the primary owner (the current owner's superiors only)."""
    result = context.ledger.change_primary_owner(
        opportunity_id, body.owner_id, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/team", response_model=CommandAccepted, status_code=201)
def add_team_member(
    opportunity_id: str,
    body: AddTeamMember,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Add a person to the deal's sales team."""
    result = context.ledger.add_team_member(
        opportunity_id, body.person_id, body.role, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/team/{person_id}/removal", response_model=CommandAccepted)
def remove_team_member(
    opportunity_id: str,
    person_id: str,
    body: RemoveTeamMember,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Take a person off the deal's sales team."""
    result = context.ledger.remove_team_member(
        opportunity_id, person_id, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/bid-details", response_model=CommandAccepted)
def record_bid_details(
    opportunity_id: str,
    body: RecordBidDetails,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Record key-account bid details (sales mode, tender type, competitors, quote …)."""
    result = context.ledger.record_bid_details(
        opportunity_id, body.details, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/amount", response_model=CommandAccepted)
def revise_amount(
    opportunity_id: str,
    body: ReviseAmount,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Revise the expected amount, with a reason."""
    result = context.ledger.revise_amount(
        opportunity_id, body.amount, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/close-date", response_model=CommandAccepted)
def revise_close_date(
    opportunity_id: str,
    body: ReviseCloseDate,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Revise the expected close date, with a reason."""
    result = context.ledger.revise_close_date(
        opportunity_id, body.expected_close, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/activities", response_model=CommandAccepted, status_code=201)
def log_opportunity_activity(
    opportunity_id: str,
    body: LogOpportunityActivity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Log an activity on the deal."""
    result = context.ledger.log_opportunity_activity(
        opportunity_id, body.kind, body.summary, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/win", response_model=CommandAccepted)
def win_opportunity(
    opportunity_id: str,
    body: WinOpportunity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Record the deal as won (from stage 7), with amount and date."""
    result = context.ledger.win_opportunity(
        opportunity_id, body.amount, body.closed_on, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/loss", response_model=CommandAccepted)
def lose_opportunity(
    opportunity_id: str,
    body: LoseOpportunity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Record the deal as lost, with the reason and competitor."""
    result = context.ledger.lose_opportunity(
        opportunity_id,
        body.reason,
        body.competitor,
        body.closed_on,
        actor=actor,
        command_id=command_id,
    )
    return accepted(result, context)


@router.post("/{opportunity_id}/reopening", response_model=CommandAccepted)
def reopen_opportunity(
    opportunity_id: str,
    body: ReopenOpportunity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Reopen a closed deal at an open stage, with a reason."""
    result = context.ledger.reopen_opportunity(
        opportunity_id, body.reason, body.stage, actor=actor, command_id=command_id
    )
    return accepted(result, context)
