"""Every projection the workers keep current, by name."""

from __future__ import annotations

from collections.abc import Sequence

from projections.audit import AuditTrailProjection
from projections.base import Projection
from projections.forecasts import ForecastProjection
from projections.funnel import FunnelProjection
from projections.listings import ListingProjection
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
        ListingProjection(),
    ]


def projection_names() -> list[str]:
    return [p.name for p in all_projections()]


HEAVIEST_FIRST = ("funnel", "monitoring", "lists", "audit", "forecasts", "plans")
"""The projections by the work their catch-up takes, alone over the bench's log (most
first): funnel, monitoring, the lists (about as much as monitoring, not measured
alone), audit, then forecasts and plans (about reading alone)."""


def spread_over_processes(names: Sequence[str], processes: int) -> list[list[str]]:
    """``names`` in at most ``processes`` groups, one worker process each: the heaviest
    get a process of their own, the rest share the last.

    A process whose projections all name their topics (the funnel alone, monitoring
    alone) reads only those events; one with the audit trail reads every event. With two
    processes on the bench's log, the funnel's reads a little over half the events.
    """
    ordered = sorted(names, key=lambda name: HEAVIEST_FIRST.index(name))
    alone = max(0, min(processes, len(ordered)) - 1)
    groups = [[name] for name in ordered[:alone]]
    if ordered[alone:]:
        groups.append(ordered[alone:])
    return groups
