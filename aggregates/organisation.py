"""The organisation: people, their roles and who reports to whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import singledispatchmethod
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from aggregates.errors import NotAllowedError, NotFoundError, RuleViolationError
from events.organisation import (
    ManagerChanged,
    OrganisationFounded,
    PersonJoined,
    PersonLeft,
    RoleChanged,
    TokenIssued,
    TokenRevoked,
)

ORGANISATION_ID: UUID = uuid5(NAMESPACE_URL, "salesledger:organisation")
SYSTEM_ACTOR = "system"


class Role(StrEnum):
    SALES_REP = "sales_rep"
    MANAGER = "manager"
    AUDITOR = "auditor"
    ADMIN = "admin"


def as_role(role: Role | str) -> Role:
    """The role named by ``role``; a RuleViolationError for an unknown one."""
    try:
        return Role(role)
    except ValueError:
        raise RuleViolationError(
            f"unknown role {role!r}; use one of {[r.value for r in Role]}"
        ) from None


@dataclass
class Person:
    person_id: str
    name: str
    role: Role
    manager_id: str | None
    active: bool = True


class Organisation(Aggregate):
    """Everyone in the sales organisation; one aggregate, as it changes rarely."""

    def __init__(self) -> None:
        self.name = ""
        self.people: dict[str, Person] = {}
        self.tokens: dict[str, tuple[str, str, bool]] = {}
        self.token_expiry: dict[str, datetime | None] = {}

    @classmethod
    def found(cls, name: str, actor: str = SYSTEM_ACTOR) -> Organisation:
        return cls._create(OrganisationFounded, id=ORGANISATION_ID, name=name, actor=actor)

    # Queries.

    def person(self, person_id: str) -> Person:
        person = self.people.get(person_id)
        if person is None or not person.active:
            raise NotFoundError(f"no active person {person_id!r}")
        return person

    def is_active(self, person_id: str) -> bool:
        """Whether ``person_id`` is a member who has not left."""
        person = self.people.get(person_id)
        return person is not None and person.active

    def has_role(self, person_id: str, *roles: Role) -> bool:
        person = self.people.get(person_id)
        return person is not None and person.active and person.role in roles

    def chain_above(self, person_id: str) -> list[str]:
        """The person's superiors, nearest first."""
        chain: list[str] = []
        current = self.people.get(person_id)
        while current is not None and current.manager_id is not None:
            if current.manager_id in chain:
                break
            chain.append(current.manager_id)
            current = self.people.get(current.manager_id)
        return chain

    def is_superior(self, superior_id: str, person_id: str) -> bool:
        return superior_id in self.chain_above(person_id)

    def direct_reports(self, manager_id: str) -> list[str]:
        return sorted(
            p.person_id for p in self.people.values() if p.manager_id == manager_id and p.active
        )

    def subtree(self, manager_id: str) -> set[str]:
        """The manager and everyone under them, at any depth."""
        members = {manager_id}
        frontier = [manager_id]
        while frontier:
            current = frontier.pop()
            for report in self.direct_reports(current):
                if report not in members:
                    members.add(report)
                    frontier.append(report)
        return members

    def require_admin(self, actor: str) -> None:
        if actor != SYSTEM_ACTOR and not self.has_role(actor, Role.ADMIN):
            raise NotAllowedError("only an admin may change the organisation")

    # Decisions.

    def join(
        self, person_id: str, name: str, role: Role | str, manager_id: str | None, actor: str
    ) -> None:
        self.require_admin(actor)
        role = as_role(role)
        if person_id in self.people and self.people[person_id].active:
            raise RuleViolationError(f"person {person_id!r} is already in the organisation")
        if manager_id is not None:
            self._require_can_manage(manager_id)
        self.trigger_event(
            PersonJoined,
            person_id=person_id,
            name=name,
            role=Role(role).value,
            manager_id=manager_id,
            actor=actor,
        )

    def change_role(self, person_id: str, role: Role | str, reason: str, actor: str) -> None:
        self.require_admin(actor)
        role = as_role(role)
        person = self.person(person_id)
        if person.role == role:
            raise RuleViolationError(f"{person_id!r} already has role {role}")
        if role != Role.MANAGER and self.direct_reports(person_id):
            raise RuleViolationError(f"{person_id!r} still has direct reports")
        self.trigger_event(
            RoleChanged, person_id=person_id, role=Role(role).value, reason=reason, actor=actor
        )

    def change_manager(
        self, person_id: str, manager_id: str | None, reason: str, actor: str
    ) -> None:
        self.require_admin(actor)
        self.person(person_id)
        if manager_id is not None:
            self._require_can_manage(manager_id)
            if manager_id == person_id or person_id in self.chain_above(manager_id):
                raise RuleViolationError("reporting lines may not form a cycle")
        self.trigger_event(
            ManagerChanged, person_id=person_id, manager_id=manager_id, reason=reason, actor=actor
        )

    def leave(self, person_id: str, reason: str, actor: str) -> None:
        self.require_admin(actor)
        self.person(person_id)
        if self.direct_reports(person_id):
            raise RuleViolationError(f"{person_id!r} still has direct reports")
        self.trigger_event(PersonLeft, person_id=person_id, reason=reason, actor=actor)

    def issue_token(
        self,
        token_id: str,
        person_id: str,
        token_digest: str,
        actor: str,
        expires_at: datetime | None = None,
    ) -> None:
        self.require_admin(actor)
        self.person(person_id)
        if token_id in self.tokens:
            raise RuleViolationError(f"token {token_id} exists")
        self.trigger_event(
            TokenIssued,
            token_id=token_id,
            person_id=person_id,
            token_digest=token_digest,
            expires_at=expires_at,
            actor=actor,
        )

    def revoke_token(self, token_id: str, reason: str, actor: str) -> None:
        self.require_admin(actor)
        if token_id not in self.tokens:
            raise NotFoundError(f"no token {token_id}")
        if self.tokens[token_id][2]:
            raise RuleViolationError(f"token {token_id} is already revoked")
        self.trigger_event(TokenRevoked, token_id=token_id, reason=reason, actor=actor)

    def _require_can_manage(self, manager_id: str) -> None:
        if not self.has_role(manager_id, Role.MANAGER, Role.ADMIN):
            raise RuleViolationError(f"{manager_id!r} is not an active manager")

    # Evolution.

    @singledispatchmethod
    def when(self, event: Any) -> None:
        raise NotImplementedError(type(event).__name__)

    @when.register
    def _(self, event: OrganisationFounded) -> None:
        self.name = event.name

    @when.register
    def _(self, event: PersonJoined) -> None:
        self.people[event.person_id] = Person(
            event.person_id, event.name, Role(event.role), event.manager_id
        )

    @when.register
    def _(self, event: RoleChanged) -> None:
        self.people[event.person_id].role = Role(event.role)

    @when.register
    def _(self, event: ManagerChanged) -> None:
        self.people[event.person_id].manager_id = event.manager_id

    @when.register
    def _(self, event: PersonLeft) -> None:
        self.people[event.person_id].active = False

    @when.register
    def _(self, event: TokenIssued) -> None:
        self.tokens[event.token_id] = (event.person_id, event.token_digest, False)
        self.token_expiry[event.token_id] = event.expires_at

    @when.register
    def _(self, event: TokenRevoked) -> None:
        person_id, digest, _ = self.tokens[event.token_id]
        self.tokens[event.token_id] = (person_id, digest, True)
