"""A customer: belongs to the company, held by an account manager."""

from __future__ import annotations

import re
import unicodedata
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.field_rules import (
    IDENTITY_PROFILE_KEYS,
    normalise_phone,
    require_configured,
    require_email,
    require_phone,
)
from aggregates.organisation import SYSTEM_ACTOR, Organisation, Role
from events.customer import (
    ActivityLogged,
    CustomerAssigned,
    CustomerClassified,
    CustomerRegistered,
    PersonalDataErased,
    ProfileSupplemented,
)
from events.personal import ERASED, ERASED_MAPPING

CLASSIFICATIONS = ("A", "B", "C")
ACTIVITY_KINDS = ("visit", "call", "meeting", "proposal", "demo", "email", "note")
_LEGAL_SUFFIXES = re.compile(
    r"\b(co|company|corp|corporation|inc|incorporated|ltd|limited|llc|gmbh|plc|sa|ag)\b"
)


def normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    text = _LEGAL_SUFFIXES.sub(" ", text)
    return re.sub(r"[\W_]+", "", text)


def uniqueness_keys(
    name: str | None,
    tax_id: str | None,
    phone: str | None,
    email: str | None,
    country_code: str = "86",
) -> dict[str, str]:
    """The normalised values by which two registrations are the same customer (phones in
    international form with the organisation's country code)."""
    keys = {"name": normalise_name(name)} if name is not None else {}
    if tax_id and tax_id.strip():
        keys["tax_id"] = re.sub(r"[\s\-]", "", tax_id).upper()
    if phone and re.sub(r"\D", "", phone):
        keys["phone"] = normalise_phone(phone, country_code)
    if email and email.strip():
        keys["email"] = email.strip().casefold()
    return keys


def identity_in(profile: dict[str, Any]) -> dict[str, str | None]:
    """The uniqueness fields a profile names (``phone``, ``email``, ``tax_id``), checked."""
    found: dict[str, str | None] = {}
    for key in IDENTITY_PROFILE_KEYS:
        if key in profile:
            value = profile[key]
            if value is not None and not isinstance(value, str):
                raise RuleViolationError(f"profile.{key}: text")
            found[key] = value
    require_phone("profile.phone", found.get("phone"))
    require_email("profile.email", found.get("email"))
    return found


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
        self.erased = False

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
        """A new customer; ``customer_id`` given for imports (a stable id) and by the ledger
        (an id whose personal-data key is stored already), else a new one."""
        if not normalise_name(name):
            raise RuleViolationError("name: must contain letters or digits")
        require_configured("source", source, org.configuration.sources)
        require_phone("phone", phone)
        require_email("email", email)
        identity_in(profile)
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
        self._require_not_erased()
        if not changes:
            raise RuleViolationError("changes: nothing to supplement")
        identity_in(changes)
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
        self._require_not_erased()
        if kind not in ACTIVITY_KINDS:
            raise RuleViolationError(f"activity kind must be one of {ACTIVITY_KINDS}")
        self.trigger_event(
            ActivityLogged, kind=kind, summary=summary, opportunity_id=opportunity_id, actor=actor
        )

    def erase_personal_data(self, reason: str, actor: str, org: Organisation) -> None:
        """Record the erasure of the customer's personal data (its key is destroyed by
        the command); only an admin (or the operator at the console) may, once. The
        business facts stay."""
        if actor != SYSTEM_ACTOR and not org.has_role(actor, Role.ADMIN):
            raise NotAllowedError("only an admin may erase a customer's personal data")
        if not reason.strip():
            raise RuleViolationError("reason: say why the personal data is erased")
        self._require_not_erased()
        self.trigger_event(PersonalDataErased, reason=reason, actor=actor)

    def _require_not_erased(self) -> None:
        if self.erased:
            raise RuleViolationError(
                "the customer's personal data was erased; it takes no new personal data"
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

    @when.register
    def _(self, event: PersonalDataErased) -> None:
        self.erased = True
        self.name = ERASED
        self.tax_id = ERASED if self.tax_id else self.tax_id
        self.phone = ERASED if self.phone else self.phone
        self.email = ERASED if self.email else self.email
        self.profile = dict(ERASED_MAPPING)


def _may_assign(org: Organisation, actor: str, new_owner: str, old_owner: str | None) -> bool:
    if org.has_role(actor, Role.ADMIN):
        return True
    if not org.has_role(actor, Role.MANAGER):
        return False
    above_new = new_owner == actor or org.is_superior(actor, new_owner)
    above_old = old_owner is None or old_owner == actor or org.is_superior(actor, old_owner)
    return above_new and above_old
