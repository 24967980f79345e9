"""Forecasts: submission of confirmed deals and revisions up the hierarchy."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from aggregates.plan import period_level
from aggregates.visibility import visible_people
from commands.models import CommandAccepted, ReviseForecast, SetQuota, SubmitForecast
from projections.forecasts import ForecastReport, query_forecast_report
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

router = LedgerRouter(prefix="/forecasts", tags=["forecasts"])


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
        period,
        body.opportunity_ids,
        categories=body.categories,
        actor=actor,
        command_id=command_id,
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


@router.post("/{period}/people/{person_id}/quota", response_model=CommandAccepted)
def set_quota(
    period: str,
    person_id: str,
    body: SetQuota,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Set a person's quota for the period (a superior of theirs or an admin)."""
    result = context.ledger.set_quota(
        person_id, period, body.amount, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.get("/{period}", response_model=ForecastReport, dependencies=[Depends(fresh("forecasts"))])
def get_forecast_report(
    period: str,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: AsOf,
    request: Request,
    format: Format = None,
) -> Any:
    """Each person's forecast and adjustments, roll-ups at every level, categories, quota,
    actuals and accuracy; the people you see (your own, your subtree, or everyone)."""
    period_level(period)
    organisation = ledger.organisation(fresh=False)
    managers = {p.person_id: p.manager_id for p in organisation.people.values()}
    in_view = visible_people(actor, organisation)
    report = query_forecast_report(database, period, managers, as_of, in_view)
    return report_response(request, ledger, actor, format, report)
