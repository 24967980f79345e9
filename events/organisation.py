"""Events of the organisation: people, roles and reporting lines."""

from __future__ import annotations

from datetime import datetime

from events.base import LedgerCreated, LedgerEvent


class OrganisationFounded(LedgerCreated):
    name: str


class PersonJoined(LedgerEvent):
    person_id: str
    name: str
    role: str
    manager_id: str | None


class RoleChanged(LedgerEvent):
    person_id: str
    role: str
    reason: str


class ManagerChanged(LedgerEvent):
    person_id: str
    manager_id: str | None
    reason: str


class PersonLeft(LedgerEvent):
    person_id: str
    reason: str


class TokenIssued(LedgerEvent):
    """An API token was issued; only its SHA-256 digest is ever stored."""

    token_id: str
    person_id: str
    token_digest: str
    expires_at: datetime | None = None
    """When the token stops working (None: tokens issued before expiry existed)."""


class TokenRevoked(LedgerEvent):
    token_id: str
    reason: str
