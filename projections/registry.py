"""Every projection the workers keep current, by name."""

from __future__ import annotations

from projections.audit import AuditTrailProjection
from projections.base import Projection
from projections.forecasts import ForecastProjection
from projections.funnel import FunnelProjection
from projections.monitoring import MonitoringProjection
from projections.plans import PlanProjection


def all_projections() -> list[Projection]:
    """A fresh instance of every projection, in a stable order."""
    return [
        FunnelProjection(),
        ForecastProjection(),
        PlanProjection(),
        MonitoringProjection(),
        AuditTrailProjection(),
    ]


def projection_names() -> list[str]:
    return [p.name for p in all_projections()]
