"""Rolling forecasts up the hierarchy: each deal counted once, each level's adjustment in
force, per category, against quota and actuals.

The one fold the forecast report and the property tests share: the report builds
``PersonFigures`` from its tables, the tests from aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from aggregates.forecast import (
    CATEGORIES,
    CONFIRMED_CATEGORIES,
    Adjustment,
    governing_adjustment,
)

ZERO = Decimal(0)


@dataclass
class PersonFigures:
    """What one person's forecast holds: their latest submission's lines (deal →
    (category, amount)) and its order among all submissions, and every adjustment."""

    person_id: str
    lines: dict[str, tuple[str, Decimal]] = field(default_factory=dict)
    submitted_at: tuple[str, int] | None = None
    submissions: int = 0
    adjustments: dict[str, Adjustment] = field(default_factory=dict)
    quota: Decimal | None = None


@dataclass
class RolledUp:
    """A person's figures with everyone below them."""

    own: Decimal
    unadjusted: Decimal
    adjusted: Decimal
    adjustment: Adjustment | None
    by_category: dict[str, Decimal]
    counted_deals: frozenset[str]


def counting_forecast(figures: Mapping[str, PersonFigures]) -> dict[str, str]:
    """Deal → the person whose forecast counts it: the latest submission naming it, so a
    deal that changed hands between two submissions is counted once."""
    owner: dict[str, str] = {}
    latest: dict[str, tuple[str, int]] = {}
    for person, person_figures in figures.items():
        if person_figures.submitted_at is None:
            continue
        for deal in person_figures.lines:
            if deal not in latest or person_figures.submitted_at > latest[deal]:
                latest[deal] = person_figures.submitted_at
                owner[deal] = person
    return owner


def chain_of(person: str, managers: Mapping[str, str | None]) -> list[str]:
    chain: list[str] = []
    current = managers.get(person)
    while current is not None and current not in chain and current != person:
        chain.append(current)
        current = managers.get(current)
    return chain


def roll_up(
    figures: Mapping[str, PersonFigures], managers: Mapping[str, str | None]
) -> dict[str, RolledUp]:
    """Every person's roll-up: unadjusted (own confirmed deals of them and everyone below),
    adjusted (the adjustment in force at each level, else the level's own plus its
    reports' adjusted figures) and the categories of the deals below."""
    counted_by = counting_forecast(figures)
    people = set(managers) | set(figures)
    reports: dict[str, list[str]] = {}
    for person in sorted(people):
        manager = managers.get(person)
        if manager is not None and manager != person:
            reports.setdefault(manager, []).append(person)
    result: dict[str, RolledUp] = {}

    def fold(person: str, seen: frozenset[str]) -> RolledUp:
        if person in result:
            return result[person]
        below = [fold(r, seen | {person}) for r in reports.get(person, []) if r not in seen]
        mine = figures.get(person, PersonFigures(person))
        by_category = dict.fromkeys(CATEGORIES, ZERO)
        deals = set()
        own = ZERO
        for deal, (category, amount) in mine.lines.items():
            if counted_by.get(deal) != person:
                continue
            deals.add(deal)
            by_category[category] += amount
            if category in CONFIRMED_CATEGORIES:
                own += amount
        for item in below:
            deals |= item.counted_deals
            for category, amount in item.by_category.items():
                by_category[category] += amount
        adjustment = governing_adjustment(mine.adjustments, person, chain_of(person, managers))
        unadjusted = own + sum((b.unadjusted for b in below), ZERO)
        adjusted = (
            adjustment.amount
            if adjustment is not None
            else own + sum((b.adjusted for b in below), ZERO)
        )
        result[person] = RolledUp(
            own, unadjusted, adjusted, adjustment, by_category, frozenset(deals)
        )
        return result[person]

    for person in sorted(people):
        fold(person, frozenset())
    return result


def forecast_accuracy(forecast: Decimal, actual: Decimal) -> Decimal:
    """1 − |forecast − actual| ÷ max(forecast, actual), in [0, 1]; 1 when both are 0.

    Defined for every case: 98k forecast and nothing sold is 0, nothing forecast and
    something sold is 0, an exact forecast is 1.
    """
    larger = max(abs(forecast), abs(actual))
    if larger == 0:
        return Decimal(1)
    return (1 - abs(forecast - actual) / larger).quantize(Decimal("0.0001"))
