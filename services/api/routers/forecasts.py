"""Forecasts: submission of confirmed deals and revisions up the hierarchy."""

from __future__ import annotations

from fastapi import APIRouter

from commands.models import CommandAccepted, ReviseForecast, SubmitForecast
from services.api.dependencies import ContextDep, IdempotencyKey, accepted
from services.api.security import CurrentActor

router = APIRouter(prefix="/forecasts", tags=["forecasts"])


@router.post("/{period}/submission", response_model=CommandAccepted)
def submit_forecast(
    period: str,
    body: SubmitForecast,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Submit your forecast: your confirmed deals plus your direct reports' forecasts."""
    result = context.ledger.submit_forecast(
        period, body.opportunity_ids, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{period}/people/{person_id}/revisions", response_model=CommandAccepted)
def revise_forecast(
    period: str,
    person_id: str,
    body: ReviseForecast,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Adjust a submitted forecast's total (its owner or a superior), with a reason."""
    result = context.ledger.revise_forecast(
        person_id, period, body.adjusted_total, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)
