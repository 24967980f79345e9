"""The funnel, its health and its conversion and velocity, live or as of a past moment."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from projections.conversion import ConversionReport, query_conversion
from projections.funnel import (
    Funnel,
    FunnelHealth,
    query_funnel,
    query_funnel_as_of,
    query_funnel_health,
)
from services.api.csv_export import Format, report_response
from services.api.dependencies import DatabaseDep, LedgerDep, fresh
from services.api.filters import FunnelFilterDep, configuration_in_force
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.api.time_params import AsOf

router = LedgerRouter(prefix="/funnel", tags=["funnel"], dependencies=[Depends(fresh("funnel"))])


@router.get("", response_model=Funnel)
def get_funnel(
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    selection: FunnelFilterDep,
    as_of: AsOf,
    request: Request,
    format: Format = None,
) -> Any:
    """Count, amount and weighted amount per stage, nurturing deals apart; live or ``as_of``
    (weighted with the stage probabilities configured then)."""
    probabilities = configuration_in_force(ledger, as_of).probabilities()
    if as_of is not None:
        funnel = query_funnel_as_of(database, as_of, selection, probabilities)
    else:
        funnel = query_funnel(database, selection, probabilities)
    return report_response(request, ledger, actor, format, funnel)


@router.get("/health", response_model=FunnelHealth)
def get_funnel_health(
    request: Request,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    selection: FunnelFilterDep,
    history_months: Annotated[int, Query(ge=1, le=36)] = 6,
    format: Format = None,
) -> Any:
    """Per stage: live count ÷ the average at past month-ends (excellent/good/warning)."""
    health = query_funnel_health(database, selection, history_months=history_months)
    return report_response(request, ledger, actor, format, health)


@router.get("/conversion", response_model=ConversionReport)
def get_conversion(
    request: Request,
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    selection: FunnelFilterDep,
    format: Format = None,
) -> Any:
    """Conversion by cohort, win rate, days per stage, sales velocity, lead sources."""
    conversion = query_conversion(database, selection)
    return report_response(request, ledger, actor, format, conversion)
