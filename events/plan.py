"""Events of a sales plan: drafted, decomposed, revised, approved."""

from __future__ import annotations

from decimal import Decimal

from events.base import LedgerCreated, LedgerEvent


class PlanDrafted(LedgerCreated):
    name: str
    period: str
    targets: dict[str, Decimal]


class TargetsDecomposed(LedgerEvent):
    parent: str
    dimension: str
    allocations: dict[str, dict[str, Decimal]]


class PlanRevised(LedgerEvent):
    """Targets changed at one or more nodes at once; ``direction`` is
    ``bottom_up`` (drafted by the teams) or ``top_down`` (set by management)."""

    changes: dict[str, dict[str, Decimal]]
    direction: str
    reason: str


class PlanApproved(LedgerEvent):
    note: str
