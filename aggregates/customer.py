"""A customer: belongs to the company, held by an account manager."""

from __future__ import annotations

import re
import unicodedata
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.organisation import Organisation, Role
from events.customer import (
    ActivityLogged,
    CustomerAssigned,
    CustomerClassified,
    CustomerRegistered,
    ProfileSupplemented,
)

CLASSIFICATIONS = ("A", "B", "C")
ACTIVITY_KINDS = ("visit", "call", "meeting", "proposal", "demo", "email", "note")
_LEGAL_SUFFIXES = re.compile(
    r"\b(co|company|corp|corporation|inc|incorporated|ltd|limited|llc|gmbh|plc|sa|ag)\b"
)


def normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    text = _LEGAL_SUFFIXES.sub(" ", text)
    return re.sub(r"[\W_]+", "", text)


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits.lstrip("0")


def uniqueness_keys(
    name: str, tax_id: str | None, phone: str | None, email: str | None
) -> dict[str, str]:
    """The normalised values by which two registrations are the same customer."""
    keys = {"name": normalise_name(name)}
    if tax_id and tax_id.strip():
        keys["tax_id"] = re.sub(r"[\s\-]", "", tax_id).upper()
    if phone and normalise_phone(phone):
        keys["phone"] = normalise_phone(phone)
    if email and email.strip():
        keys["email"] = email.strip().casefold()
    return keys


class Customer(Aggregate):
    """A customer and its ownership history."""

    def __init__(self) -> None:
        self.name = ""
        self.source = ""
        self.tax_id: str | None = None
        self.phone: str | None = None
        self.email: str | None = None
        self.owner_id: str | None = None
        self.previous_owner_ids: list[str] = []
        self.profile: dict[str, Any] = {}
        self.classification: str | None = None
        self.activity_count = 0

    @classmethod
    def register(
        cls,
        *,
        name: str,
        source: str,
        tax_id: str | None,
        phone: str | None,
        email: str | None,
        owner_id: str | None,
        profile: dict[str, Any],
        actor: str,
        org: Organisation,
        customer_id: UUID | None = None,
    ) -> Customer:
        """A new customer; ``customer_id`` only for imports (a stable id), else a new one."""
        if not normalise_name(name):
            raise RuleViolationError("customer name must contain letters or digits")
        if org.has_role(actor, Role.AUDITOR):
            raise NotAllowedError("an auditor changes nothing")
        if owner_id is not None:
            org.person(owner_id)
            if owner_id != actor and not _may_assign(org, actor, owner_id, None):
                raise NotAllowedError("only a manager of the new owner may assign a customer")
        return cls._create(
            CustomerRegistered,
            id=customer_id,
            name=name.strip(),
            source=source,
            tax_id=tax_id,
            phone=phone,
            email=email,
            owner_id=owner_id,
            profile=profile,
            actor=actor,
        )

    def supplement_profile(self, changes: dict[str, Any], actor: str) -> None:
        if not changes:
            raise RuleViolationError("nothing to supplement")
        self.trigger_event(ProfileSupplemented, changes=changes, actor=actor)

    def classify(self, classification: str, reason: str, actor: str) -> None:
        if classification not in CLASSIFICATIONS:
            raise RuleViolationError(f"classification must be one of {CLASSIFICATIONS}")
        if classification == self.classification:
            raise RuleViolationError(f"customer is already class {classification}")
        self.trigger_event(
            CustomerClassified, classification=classification, reason=reason, actor=actor
        )

    def assign(self, owner_id: str, reason: str, actor: str, org: Organisation) -> None:
        """Assign or transfer to an account manager; only a manager may do it."""
        org.person(owner_id)
        if owner_id == self.owner_id:
            raise RuleViolationError(f"customer is already held by {owner_id}")
        if not _may_assign(org, actor, owner_id, self.owner_id):
            raise NotAllowedError(
                "only a manager above both the current and the new owner may transfer a customer"
            )
        self.trigger_event(
            CustomerAssigned,
            owner_id=owner_id,
            previous_owner_id=self.owner_id,
            reason=reason,
            actor=actor,
        )

    def log_activity(self, kind: str, summary: str, opportunity_id: str | None, actor: str) -> None:
        if kind not in ACTIVITY_KINDS:
            raise RuleViolationError(f"activity kind must be one of {ACTIVITY_KINDS}")
        self.trigger_event(
            ActivityLogged, kind=kind, summary=summary, opportunity_id=opportunity_id, actor=actor
        )

    @singledispatchmethod
    def when(self, event: Any) -> None:
        raise NotImplementedError(type(event).__name__)

    @when.register
    def _(self, event: CustomerRegistered) -> None:
        self.name = event.name
        self.source = event.source
        self.tax_id = event.tax_id
        self.phone = event.phone
        self.email = event.email
        self.owner_id = event.owner_id
        self.profile = dict(event.profile)

    @when.register
    def _(self, event: ProfileSupplemented) -> None:
        self.profile.update(event.changes)

    @when.register
    def _(self, event: CustomerClassified) -> None:
        self.classification = event.classification

    @when.register
    def _(self, event: CustomerAssigned) -> None:
        if self.owner_id is not None:
            self.previous_owner_ids.append(self.owner_id)
        self.owner_id = event.owner_id

    @when.register
    def _(self, event: ActivityLogged) -> None:
        self.activity_count += 1


def _may_assign(org: Organisation, actor: str, new_owner: str, old_owner: str | None) -> bool:
    if org.has_role(actor, Role.ADMIN):
        return True
    if not org.has_role(actor, Role.MANAGER):
        return False
    above_new = new_owner == actor or org.is_superior(actor, new_owner)
    above_old = old_owner is None or old_owner == actor or org.is_superior(actor, old_owner)
    return above_new and above_old
