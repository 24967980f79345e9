"""Events of a sales plan: drafted, decomposed, revised, approved."""

from __future__ import annotations

from decimal import Decimal

from events.base import LedgerCreated, LedgerEvent


class PlanDrafted(LedgerCreated):
    """``unit``: the manager whose subtree the plan covers (its actuals are that subtree's
    won deals); None for a company-wide plan (plans drafted before units existed)."""

    name: str
    period: str
    targets: dict[str, Decimal]
    unit: str | None = None


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


class PlanProposalMade(LedgerEvent):
    """Bottom-up: the person a node is for proposes its targets (the plan's targets do not
    change until a planner adopts the proposal in a ``bottom_up`` revision)."""

    path: str
    targets: dict[str, Decimal]
    reason: str
