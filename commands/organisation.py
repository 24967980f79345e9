"""Commands of the organisation: people, roles, reporting lines, settings, API tokens,
and a person's holdings passed on when they move or leave."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from aggregates.customer import Customer
from aggregates.errors import (
    AlreadyIssuedError,
    ConcurrencyConflictError,
    NotFoundError,
    RuleViolationError,
)
from aggregates.opportunity import Opportunity
from aggregates.organisation import ORGANISATION_ID, SYSTEM_ACTOR, Organisation, Role
from aggregates.ownership import require_held
from commands.aggregate_cache import StaleCacheError
from commands.application import MAX_DECISION_ATTEMPTS, CommandResult, LedgerApplication
from commands.claims import (
    claim_for_command,
    command_outcome_value,
    token_claim,
    token_revoked_claim,
)
from commands.concurrency import GuardMovedError


class OrganisationCommands(LedgerApplication):
    """The organisation's commands (admins and managers)."""

    def set_up_organisation(self, name: str, admin_id: str, admin_name: str) -> CommandResult:
        """Found the organisation with its first admin; refused once it exists."""
        try:
            self.organisation()
        except NotFoundError:
            org = Organisation.found(name)
            org.join(admin_id, admin_name, Role.ADMIN, None, SYSTEM_ACTOR)
            return self._save(org, actor=SYSTEM_ACTOR, command_id=None)
        raise RuleViolationError("the organisation is already set up")

    def add_person(
        self,
        person_id: str,
        name: str,
        role: Role | str,
        manager_id: str | None,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.join(person_id, name, role, manager_id, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def change_role(
        self,
        person_id: str,
        role: Role | str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.change_role(person_id, role, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def change_manager(
        self,
        person_id: str,
        manager_id: str | None,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.change_manager(person_id, manager_id, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def configure(
        self, changes: dict[str, Any], reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        """Change the organisation's settings, with a reason (admins only)."""

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.configure(changes, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def remove_person(
        self, person_id: str, reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.leave(person_id, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def transfer_holdings(
        self,
        person_id: str,
        successor_id: str,
        deal_ids: Sequence[str],
        customer_ids: Sequence[str],
        reason: str,
        *,
        departure: bool = False,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        """Move ``person_id``'s open deals and customers to ``successor_id`` in one
        command, one event per aggregate with the reason; with ``departure``, the person
        leaves in the same append."""
        if not reason.strip():
            raise RuleViolationError("reason: a transfer needs a reason")
        why = f"{reason} (holdings of {person_id} passed to {successor_id})"

        previous = self._previous_result(actor, command_id)
        if previous is not None:
            return previous
        for _ in range(MAX_DECISION_ATTEMPTS):
            org = self.organisation(for_change=departure)
            guard = (ORGANISATION_ID, org.version)
            changed: list[Aggregate] = []
            for deal_id in deal_ids:
                deal = self.load(Opportunity, deal_id)
                require_held(deal.owner_id, person_id, deal.title)
                deal.change_primary_owner(successor_id, why, actor, org)
                changed.append(deal)
            for customer_id in customer_ids:
                customer = self.load(Customer, customer_id)
                require_held(customer.owner_id, person_id, customer.name)
                customer.assign(successor_id, why, actor, org)
                changed.append(customer)
            if departure:
                org.leave(person_id, reason, actor)
                changed.append(org)
            if not changed:
                raise RuleViolationError(f"{person_id} holds no open deals or customers")
            try:
                return self._save_all(changed, actor=actor, command_id=command_id, guard=guard)
            except (GuardMovedError, StaleCacheError):
                continue
        raise ConcurrencyConflictError("the records kept changing while deciding; retry")

    def _save_all(
        self,
        aggregates: Sequence[Aggregate],
        *,
        actor: str,
        command_id: str | None,
        guard: tuple[UUID, int] | None = None,
    ) -> CommandResult:
        """Save several aggregates' new events in one append: all or none; the result
        names the last aggregate."""
        last = aggregates[-1]
        claims = []
        if command_id:
            value = command_outcome_value(last.id, last.version, None)
            claims.append((claim_for_command(actor, command_id), value))
        stored = [
            self.mapper.to_stored_event(event)
            for aggregate in aggregates
            for event in aggregate.collect_events()
        ]
        try:
            positions = self.recorder.insert_events(stored, claims=claims, guard=guard) or []
        except IntegrityError:
            previous = self._previous_result(actor, command_id)
            if previous is not None:
                return previous
            if any(a.id in self._cache.unverified() for a in aggregates):
                raise StaleCacheError from None
            raise ConcurrencyConflictError(
                "some of the records were changed by someone else at the same time; retry"
            ) from None
        for aggregate in aggregates:
            self._kept(aggregate)
        return CommandResult(str(last.id), last.version, positions[-1] if positions else None)

    # API tokens: only digests are stored; the claims table maps a digest to its person.

    @property
    def token_lifetime(self) -> timedelta:
        """How long a new token works (``LEDGER_TOKEN_TTL_DAYS``, default 90 days)."""
        return timedelta(days=float(self.env.get("LEDGER_TOKEN_TTL_DAYS") or 90))

    def issue_token(
        self, person_id: str, *, actor: str, command_id: str | None = None
    ) -> tuple[str, str]:
        """A new bearer token for ``person_id``: (token_id, token). The token is shown once
        and expires after ``token_lifetime``. Issuance is not replayable: the token is
        stored only as a digest, so a repeat of the same ``command_id`` cannot show it
        again and is refused (``AlreadyIssuedError``) instead of answering with a token
        that does not work."""
        token = "sl_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        token_id = digest[:16]
        expires_at = datetime.now(UTC) + self.token_lifetime

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.issue_token(token_id, person_id, digest, actor, expires_at)
            return org, [(token_claim(digest), person_id)]

        result = self._run(actor, command_id, decide)
        if result.duplicate:
            raise AlreadyIssuedError(
                "a token was already issued under this Idempotency-Key; it is shown only "
                "once: revoke it and issue another if it was lost"
            )
        return token_id, token

    def rotate_token(
        self, token_id: str, *, actor: str, command_id: str | None = None
    ) -> tuple[str, str]:
        """Replace a token: a new one for the same person (same lifetime rules) and the
        old one revoked, in one append. (token_id, token) of the new one."""
        token = "sl_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        new_id = digest[:16]
        expires_at = datetime.now(UTC) + self.token_lifetime

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            if token_id not in org.tokens:
                raise NotFoundError(f"no token {token_id}")
            person_id, old_digest, _ = org.tokens[token_id]
            org.issue_token(new_id, person_id, digest, actor, expires_at)
            org.revoke_token(token_id, f"rotated: replaced by {new_id}", actor)
            return org, [
                (token_claim(digest), person_id),
                (token_revoked_claim(old_digest), token_id),
            ]

        result = self._run(actor, command_id, decide)
        if result.duplicate:
            raise AlreadyIssuedError("this rotation was already made; its token is shown once")
        return new_id, token

    def revoke_token(
        self, token_id: str, reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            digest = org.tokens[token_id][1] if token_id in org.tokens else ""
            org.revoke_token(token_id, reason, actor)
            return org, [(token_revoked_claim(digest), token_id)]

        return self._run(actor, command_id, decide)

    def authenticate(self, token: str, *, since: float | None = None) -> str | None:
        """The person a bearer token belongs to; None if it is unknown or revoked, or its
        person has left the organisation. ``since``: when the request arrived
        (``time.monotonic``); the organisation is then as the store had it at that moment
        or later, as if looked up for this request alone."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        org = self.organisation(since=since)
        # The organisation, just brought up to date, records every token issued and
        # revoked: no read of the claims table per request.
        person_id, issued_digest, revoked = org.tokens.get(digest[:16], ("", "", True))
        if revoked or not hmac.compare_digest(issued_digest, digest):
            return None
        expires_at = org.token_expiry.get(digest[:16])
        if expires_at is not None and expires_at <= datetime.now(UTC):
            return None
        return person_id if org.is_active(person_id) else None
