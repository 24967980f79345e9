"""The funnel, its health and its conversion and velocity, live or as of a past moment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from projections.conversion import ConversionReport, query_conversion
from projections.funnel import (
    Funnel,
    FunnelHealth,
    query_funnel,
    query_funnel_as_of,
    query_funnel_health,
)
from services.api.dependencies import DatabaseDep, LedgerDep, fresh
from services.api.filters import FunnelFilterDep
from services.api.security import CurrentActor

router = APIRouter(prefix="/funnel", tags=["funnel"], dependencies=[Depends(fresh("funnel"))])

AsOf = Annotated[
    datetime | None,
    Query(
        description="Reconstruct as it was at this moment, from the events alone.",
        examples=["2026-03-31T23:59:59Z"],
    ),
]


@router.get("", response_model=Funnel)
def get_funnel(
    database: DatabaseDep,
    ledger: LedgerDep,
    actor: CurrentActor,
    selection: FunnelFilterDep,
    as_of: AsOf = None,
) -> Funnel:
    """Count, amount and weighted amount per stage, nurturing deals apart; live or ``as_of``."""
    if as_of is not None:
        return query_funnel_as_of(ledger, as_of, selection)
    return query_funnel(database, selection)


@router.get("/health", response_model=FunnelHealth)
def get_funnel_health(
    database: DatabaseDep,
    actor: CurrentActor,
    selection: FunnelFilterDep,
    history_months: Annotated[int, Query(ge=1, le=36)] = 6,
) -> FunnelHealth:
    """Per stage: live count ÷ the average at past month-ends (excellent/good/warning)."""
    return query_funnel_health(database, selection, history_months=history_months)


@router.get("/conversion", response_model=ConversionReport)
def get_conversion(
    database: DatabaseDep, actor: CurrentActor, selection: FunnelFilterDep
) -> ConversionReport:
    """Conversion by cohort, win rate, days per stage, sales velocity, lead sources."""
    return query_conversion(database, selection)
