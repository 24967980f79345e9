"""Events of a sales opportunity moving through the funnel."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from events.base import LedgerCreated, LedgerEvent


class OpportunityOpened(LedgerCreated):
    customer_id: str
    owner_id: str
    title: str
    source: str
    amount: Decimal
    expected_close: date
    product: str
    region: str


class OpportunityQualified(LedgerEvent):
    criteria: dict[str, bool]


class OpportunityDisqualified(LedgerEvent):
    criteria: dict[str, bool]
    reason: str


class OpportunityEvaluated(LedgerEvent):
    answers: dict[str, bool]
    score: int
    high_value: bool


class StageAdvanced(LedgerEvent):
    from_stage: int
    to_stage: int
    reason: str | None


class PrimaryOwnerChanged(LedgerEvent):
    owner_id: str
    previous_owner_id: str
    reason: str


class TeamMemberAdded(LedgerEvent):
    person_id: str
    role: str


class TeamMemberRemoved(LedgerEvent):
    person_id: str
    reason: str


class BidDetailsRecorded(LedgerEvent):
    details: dict[str, Any]


class AmountRevised(LedgerEvent):
    amount: Decimal
    previous_amount: Decimal
    reason: str


class CloseDateRevised(LedgerEvent):
    expected_close: date
    previous_expected_close: date
    reason: str


class OpportunityActivityLogged(LedgerEvent):
    kind: str
    summary: str


class OpportunityWon(LedgerEvent):
    amount: Decimal
    closed_on: date


class OpportunityLost(LedgerEvent):
    reason: str
    competitor: str | None
    closed_on: date


class OpportunityReopened(LedgerEvent):
    reason: str
    stage: int
