"""Every projection the workers keep current, by name."""

from __future__ import annotations

from projections.audit import AuditTrailProjection
from projections.base import Projection
from projections.funnel import FunnelProjection


def all_projections() -> list[Projection]:
    """A fresh instance of every projection, in a stable order."""
    return [
        FunnelProjection(),
        AuditTrailProjection(),
    ]


def projection_names() -> list[str]:
    return [p.name for p in all_projections()]
