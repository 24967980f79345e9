"""The eight-stage sales funnel and its default win probabilities (DOMAIN.md)."""

from __future__ import annotations

from decimal import Decimal

STAGE_NAMES: dict[int, str] = {
    1: "contact and need identified",
    2: "requirements, budget and sponsor established",
    3: "organisation and relationships mapped",
    4: "sales objective set, resources requested",
    5: "shortlisted / bid submitted",
    6: "selected as sole vendor / bid won",
    7: "commercial negotiation",
    8: "agreement on all terms",
}

STAGE_PROBABILITY: dict[int, Decimal] = {
    1: Decimal("0.05"),
    2: Decimal("0.10"),
    3: Decimal("0.20"),
    4: Decimal("0.30"),
    5: Decimal("0.50"),
    6: Decimal("0.70"),
    7: Decimal("0.90"),
    8: Decimal("1.00"),
}

FIRST_STAGE = 1
LAST_OPEN_STAGE = 7
WON_STAGE = 8


HEALTH_EXCELLENT = Decimal("1.00")
"""Funnel health: more deals at a stage than its past average is excellent (DOMAIN.md)."""
HEALTH_GOOD = Decimal("0.70")
"""At least 70 % of the past average is good; below it, a warning."""
HEALTH_HISTORY_MONTHS = 6
"""How many past month-ends the average of a stage's count is taken over."""


def health_label(ratio: Decimal | None) -> str:
    """The funnel-health label of a stage whose live count is ``ratio`` × its past average."""
    if ratio is None:
        return "no history"
    if ratio > HEALTH_EXCELLENT:
        return "excellent"
    if ratio >= HEALTH_GOOD:
        return "good"
    return "warning"
