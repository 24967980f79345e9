"""Events of a customer."""

from __future__ import annotations

from typing import Any

from events.base import LedgerCreated, LedgerEvent


class CustomerRegistered(LedgerCreated):
    name: str
    source: str
    tax_id: str | None
    phone: str | None
    email: str | None
    owner_id: str | None
    profile: dict[str, Any]


class ProfileSupplemented(LedgerEvent):
    changes: dict[str, Any]


class CustomerClassified(LedgerEvent):
    classification: str
    reason: str


class CustomerAssigned(LedgerEvent):
    owner_id: str
    previous_owner_id: str | None
    reason: str


class ActivityLogged(LedgerEvent):
    kind: str
    summary: str
    opportunity_id: str | None


class PersonalDataErased(LedgerEvent):
    """The receipt of an erasure (GDPR art. 17): the customer's key was destroyed, so
    every personal field of its events reads as erased from now on; who, when and why."""

    reason: str
