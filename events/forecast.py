"""Events of a person's forecast for a period."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from events.base import LedgerCreated, LedgerEvent


class ForecastOpened(LedgerCreated):
    person_id: str
    period: str


class ForecastSubmitted(LedgerEvent):
    """A forecast sent upward: the person's own confirmed deals (``lines``), the
    forecasts received from direct reports (``team``) and the resulting total."""

    lines: list[dict[str, Any]]
    team: dict[str, Decimal]
    own_total: Decimal
    team_total: Decimal
    total: Decimal


class ForecastRevised(LedgerEvent):
    """An adjustment of a forecast's total, by its owner or a superior."""

    adjusted_total: Decimal
    previous_total: Decimal
    reason: str


class QuotaSet(LedgerEvent):
    """The quota of a person for the forecast's period, set by a superior or an admin."""

    amount: Decimal
    reason: str
