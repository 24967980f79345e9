"""Analytics: what changed in the pipeline, field history, flags; scoped to the caller."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel

from aggregates.errors import RuleViolationError
from aggregates.plan import period_bounds
from projections.field_history import DealFlags, FieldHistory, FlagThresholds
from projections.forecast_errors import ForecastErrors, accuracy_over_periods
from projections.funnel import FunnelFilter
from projections.pipeline_changes import PipelineChanges, pipeline_changes
from projections.win_loss import WinLoss
from services.access import sees_everything, visible_owners
from services.analytics.events import recorded_events
from services.analytics.queries import (
    field_history,
    forecast_error_forensics,
    pipeline_flags,
    win_loss_analysis,
)
from services.api.dependencies import LedgerDep
from services.api.filters import FunnelFilterDep
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor

router = LedgerRouter(tags=["analytics"])


def visible_scope(
    ledger: LedgerDep, actor: CurrentActor, selection: FunnelFilterDep
) -> FunnelFilter:
    """The filter asked for, narrowed to the deals the caller may see one by one."""
    owners = visible_owners(actor, ledger.organisation(fresh=False), selection.owner_ids)
    return replace(selection, owner_ids=owners)


VisibleScope = Annotated[FunnelFilter, Depends(visible_scope)]


def flag_thresholds(
    pushed_times: Annotated[int, Query(ge=1, le=1000, description="flag pushed ≥ N times")] = 2,
    amount_drop_percent: Annotated[
        Decimal, Query(ge=0, le=100, description="flag amount down > X % from its highest")
    ] = Decimal(20),
    idle_days: Annotated[int, Query(ge=1, le=3650, description="flag no activity in N days")] = 14,
) -> FlagThresholds:
    return FlagThresholds(pushed_times, amount_drop_percent, idle_days)


Thresholds = Annotated[FlagThresholds, Depends(flag_thresholds)]


@router.get("/pipeline/changes", response_model=PipelineChanges)
def get_pipeline_changes(
    ledger: LedgerDep,
    scope: VisibleScope,
    from_moment: Annotated[datetime, Query(alias="from", description="T1 (ISO 8601)")],
    to_moment: Annotated[datetime, Query(alias="to", description="T2, after T1 (ISO 8601)")],
) -> PipelineChanges:
    """Pipeline at T1, every change (new, won, lost, moved, pushed, amount, stage, owner)
    with the deals behind it, and pipeline at T2; reps and managers see their subtree."""
    try:
        return pipeline_changes(recorded_events(ledger), from_moment, to_moment, scope)
    except ValueError as error:
        raise RuleViolationError(f"to: {error} (from)") from None


@router.get("/pipeline/flags", response_model=list[DealFlags])
def get_pipeline_flags(
    ledger: LedgerDep,
    scope: VisibleScope,
    limits: Thresholds,
    include_closed: Annotated[bool, Query(description="flag won and lost deals too")] = False,
) -> list[DealFlags]:
    """Deals flagged pushed ≥ N times, amount down > X %, no activity in N days, or with
    their expected close in the past."""
    return pipeline_flags(ledger, scope, limits, open_only=not include_closed)


@router.get("/aggregates/{aggregate_id}/field-history", response_model=FieldHistory)
def get_field_history(
    aggregate_id: str,
    ledger: LedgerDep,
    limits: Thresholds,
    field: Annotated[
        str | None, Query(max_length=200, description="one field (or its keys: team)")
    ] = None,
) -> FieldHistory:
    """Every change of every field of any aggregate, old → new, who, when and why."""
    return field_history(ledger, aggregate_id, field, limits)


@router.get("/win-loss", response_model=WinLoss)
def get_win_loss(ledger: LedgerDep, scope: VisibleScope) -> WinLoss:
    """Closed deals (closing date in ``close_period``): lost reasons, competitors, the stage
    lost at, and won/lost by source, owner, product and region."""
    return win_loss_analysis(ledger, scope)


@router.get("/forecasts/{period}/errors", response_model=ForecastErrors)
def get_forecast_errors(
    period: str,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: Annotated[
        datetime | None, Query(description="the forecasts as they stood then (default: now)")
    ] = None,
) -> ForecastErrors:
    """Each level's forecast at a date against what happened, the error split per deal
    into slips, amount changes, stage regressions, losses, unforecast deals, adjustments."""
    org = ledger.organisation(fresh=False)
    people = None if sees_everything(actor, org) else org.subtree(actor)
    moment = as_of or datetime.now(UTC)
    return forecast_error_forensics(ledger, period, moment, people)


class PersonAccuracy(BaseModel):
    """One person's forecast accuracy in each period, and their mean absolute error."""

    person_id: str
    periods: dict[str, Decimal | None]
    mean_absolute_error: Decimal


@router.get("/forecast-accuracy", response_model=list[PersonAccuracy])
def get_forecast_accuracy(
    ledger: LedgerDep,
    actor: CurrentActor,
    period: Annotated[list[str], Query(min_length=1, max_length=24, examples=[["2026-Q1"]])],
    days_before_end: Annotated[
        int, Query(ge=0, le=366, description="forecasts as they stood N days before each end")
    ] = 0,
) -> list[PersonAccuracy]:
    """Accuracy per person over periods (1 − |error| ÷ actual), forecasts read N days
    before each period's end."""
    org = ledger.organisation(fresh=False)
    people = None if sees_everything(actor, org) else org.subtree(actor)
    reports = []
    for name in period:
        end = datetime.combine(period_bounds(name)[1], time.max, tzinfo=UTC)
        moment = end - timedelta(days=days_before_end)
        reports.append(forecast_error_forensics(ledger, name, moment, people))
    return [
        PersonAccuracy(person_id=person, **entry)
        for person, entry in sorted(accuracy_over_periods(reports).items())
    ]
