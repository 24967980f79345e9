"""Forecasts: submission of confirmed deals and revisions up the hierarchy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from aggregates.plan import period_level
from commands.models import CommandAccepted, ReviseForecast, SubmitForecast
from projections.forecasts import ForecastReport, query_forecast_report
from services.api.dependencies import (
    ContextDep,
    DatabaseDep,
    IdempotencyKey,
    LedgerDep,
    accepted,
    fresh,
)
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


@router.get("/{period}", response_model=ForecastReport, dependencies=[Depends(fresh("forecasts"))])
def get_forecast_report(
    period: str,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: Annotated[
        datetime | None,
        Query(description="what was believed at this moment", examples=["2026-04-15T00:00:00Z"]),
    ] = None,
) -> ForecastReport:
    """Each person's forecast and revisions, roll-ups at every level, and accuracy."""
    period_level(period)
    managers = {p.person_id: p.manager_id for p in ledger.organisation(fresh=False).people.values()}
    return query_forecast_report(database, period, managers, as_of)
