"""Which claims the ledger's events make.

A claim is a unique key recorded in the same append as the events that decided it. The
events are what the chains and seals protect; the claims table is not. So each kind of
claim is named here once, for the commands that record it and for ``verify``, which
derives every claim of the table from the events (``services.claims_audit``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from aggregates.configuration import Configuration
from aggregates.customer import uniqueness_keys
from commands.personal_data import NO_KEY
from events.customer import CustomerRegistered, ProfileSupplemented
from events.organisation import ConfigurationChanged, TokenIssued, TokenRevoked
from events.personal import ERASED

UNREADABLE = {ERASED, NO_KEY}
"""What a personal text reads as when its key is destroyed, or missing altogether."""
CUSTOMER_TOPICS = tuple(get_topic(c) for c in (CustomerRegistered, ProfileSupplemented))
"""The customer events that make uniqueness claims."""
ORGANISATION_TOPICS = tuple(
    get_topic(c) for c in (TokenIssued, TokenRevoked, ConfigurationChanged)
)
"""The organisation's events that make (or shape) claims."""

IDENTITY_FIELDS = ("tax_id", "phone", "email")
"""The identity fields a profile may name besides the registration's own."""

Digest = Callable[[str, str], str]
"""The keyed uniqueness claim of a (kind, normalised value): ``personal_data.keyed_claim``
with the claims key."""


def token_claim(digest: str) -> str:
    """The claim of an issued token's digest (its value: the person it belongs to)."""
    return f"token:{digest}"


def token_revoked_claim(digest: str) -> str:
    """The claim of a revoked token's digest (its value: the token id)."""
    return f"token-revoked:{digest}"


def claim_for_command(actor: str, command_id: str) -> str:
    """The claim that records the outcome of the command ``actor`` sent as ``command_id``."""
    return f"command:{actor}:{command_id}"


def command_claim_actor(claim: str) -> str:
    """The actor a command claim (``claim_for_command``) was recorded for."""
    return (claim.split(":", 2) + [""])[1]


def command_outcome_value(aggregate_id: UUID, version: int, fingerprint: str | None) -> str:
    """A command claim's value: the event it ended with, and the fingerprint of the request
    (when the request had one), ``AGGREGATE:VERSION[:FINGERPRINT]``."""
    outcome = f"{aggregate_id}:{version}"
    return f"{outcome}:{fingerprint}" if fingerprint else outcome


def command_outcome(value: str) -> tuple[UUID, int]:
    """The event a command claim's value names (``AGGREGATE:VERSION[:FINGERPRINT]``);
    ``ValueError`` if it names none."""
    aggregate_id, version, *_ = value.split(":", 2)
    return UUID(aggregate_id), int(version)


def command_fingerprint(value: str) -> str | None:
    """The request fingerprint a command claim's value records, if any."""
    parts = value.split(":", 2)
    return parts[2] if len(parts) == 3 else None


@dataclass
class OrganisationClaims:
    """The claims the organisation's events make — every token digest issued and revoked —
    and the country codes its configuration has had (a phone is claimed in the
    international form of the day it was registered)."""

    tokens: dict[str, str] = field(default_factory=dict)
    """Claim → value, for every token claim the events make."""
    country_codes: set[str] = field(default_factory=lambda: {Configuration().country_code})
    _digests: dict[str, str] = field(default_factory=dict)

    def add(self, event: Any) -> None:
        """Take in one of the organisation's events, in version order."""
        if isinstance(event, TokenIssued):
            self.tokens[token_claim(event.token_digest)] = event.person_id
            self._digests[event.token_id] = event.token_digest
        elif isinstance(event, TokenRevoked) and event.token_id in self._digests:
            self.tokens[token_revoked_claim(self._digests[event.token_id])] = event.token_id
        elif isinstance(event, ConfigurationChanged) and event.changes.get("country_code"):
            self.country_codes.add(str(event.changes["country_code"]))


@dataclass
class CustomerClaims:
    """The uniqueness claims one customer's events make.

    Each registration or profile change that named an identity must have claimed it:
    ``required`` holds, per such (event, kind), the claims that would do (a phone's under
    each country code the organisation has had; only one of them was made). Events whose
    personal data is erased (or whose key is missing) cannot be recomputed: ``erased``
    counts, per kind, how many of them may have claimed one, so a customer still has no
    more claims than its events could have made."""

    required: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    erased: Counter[str] = field(default_factory=Counter)

    @property
    def derivable(self) -> set[str]:
        return {claim for _, claims in self.required for claim in claims}


def customer_claims(
    events: Iterable[Any], digest: Digest, country_codes: Iterable[str]
) -> CustomerClaims:
    """The claims a customer's events (decoded, personal fields readable or ``ERASED``)
    make, as ``commands.customers`` and the CRM import made them."""
    codes = sorted(country_codes)
    found = CustomerClaims()
    for event in events:
        if isinstance(event, CustomerRegistered):
            name: str | None = event.name
            fields = {"tax_id": event.tax_id, "phone": event.phone, "email": event.email}
            profile = event.profile
        elif isinstance(event, ProfileSupplemented):
            name, fields, profile = None, {}, event.changes
        else:
            continue
        if name in UNREADABLE or _is_erased(profile) or UNREADABLE & set(fields.values()):
            found.erased.update(_erased_kinds(name, fields, profile))
            continue
        named = {k: profile.get(k) for k in IDENTITY_FIELDS if isinstance(profile.get(k), str)}
        values = {k: fields.get(k) or named.get(k) for k in IDENTITY_FIELDS}
        by_kind: dict[str, set[str]] = {}
        for code in codes:
            keys = uniqueness_keys(name, values["tax_id"], values["phone"], values["email"], code)
            for kind, value in keys.items():
                by_kind.setdefault(kind, set()).add(digest(kind, value))
        found.required.extend((kind, frozenset(claims)) for kind, claims in by_kind.items())
    return found


def _is_erased(profile: Any) -> bool:
    return isinstance(profile, dict) and profile.get("erased") in UNREADABLE


def _erased_kinds(name: str | None, fields: dict[str, Any], profile: Any) -> list[str]:
    """The kinds an erased event may have claimed: its identity fields that held a value
    (an empty one is stored as it is), and any a profile may have named."""
    kinds = ["name"] if name is not None else []
    kinds += [kind for kind, value in fields.items() if value in UNREADABLE]
    if profile:
        kinds += [kind for kind in IDENTITY_FIELDS if kind not in kinds]
    return kinds
