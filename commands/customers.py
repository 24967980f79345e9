"""Commands of customers: registration (claimed unique), profile, classification,
ownership and activities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.domain import Aggregate

from aggregates.customer import Customer, identity_in, uniqueness_keys
from aggregates.errors import RuleViolationError
from aggregates.opportunity import Opportunity
from aggregates.organisation import Organisation
from aggregates.permissions import require_may_change
from commands.application import CommandResult, LedgerApplication
from commands.erasure import erasure


class CustomerCommands(LedgerApplication):
    """Customers' commands."""

    def register_customer(
        self,
        *,
        name: str,
        source: str,
        tax_id: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        owner_id: str | None = None,
        profile: dict[str, Any] | None = None,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            named = identity_in(profile or {})
            keys = uniqueness_keys(
                name,
                tax_id or named.get("tax_id"),
                phone or named.get("phone"),
                email or named.get("email"),
                org.configuration.country_code,
            )
            customer = Customer.register(
                name=name,
                source=source,
                tax_id=tax_id,
                phone=phone,
                email=email,
                owner_id=owner_id,
                profile=profile or {},
                actor=actor,
                org=org,
                customer_id=self.subject_keys.new_subject(),
            )
            return customer, self._unclaimed(keys, customer)

        return self._run(actor, command_id, decide)

    def supplement_customer(
        self,
        customer_id: str,
        changes: dict[str, Any],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            customer, org = self._load_with_organisation(Customer, customer_id)
            require_may_change(customer, actor, org)
            customer.supplement_profile(changes, actor)
            named = identity_in(changes)
            keys = uniqueness_keys(
                None,
                named.get("tax_id"),
                named.get("phone"),
                named.get("email"),
                org.configuration.country_code,
            )
            return customer, self._unclaimed(keys, customer)

        return self._run(actor, command_id, decide)

    def classify_customer(
        self,
        customer_id: str,
        classification: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Customer,
            customer_id,
            actor,
            command_id,
            lambda c, _: c.classify(classification, reason, actor),
        )

    def assign_customer(
        self,
        customer_id: str,
        owner_id: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            customer = self.load(Customer, customer_id)
            customer.assign(owner_id, reason, actor, org)
            return customer, ()

        return self._run(actor, command_id, decide)

    def log_customer_activity(
        self,
        customer_id: str,
        kind: str,
        summary: str,
        opportunity_id: str | None = None,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def act(customer: Customer, org: Organisation) -> None:
            if opportunity_id is not None:
                deal = self._read_visible(
                    Opportunity, opportunity_id, "the activity's deal", actor, org
                )
                if deal.customer_id != str(customer.id):
                    raise RuleViolationError(
                        "opportunity_id: an activity names only a deal of the same customer"
                    )
            customer.log_activity(kind, summary, opportunity_id, actor)

        return self._change(Customer, customer_id, actor, command_id, act)

    def erase_customer(
        self, customer_id: str, reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        """Erase the customer's personal data: destroy its key, append the receipt."""
        return self._change(
            Customer, customer_id, actor, command_id, erasure(self.subject_keys, reason, actor)
        )

    def _unclaimed(self, keys: dict[str, str], customer: Customer) -> list[tuple[str, str]]:
        """The uniqueness claims of ``keys`` (keyed digests) for ``customer``; a
        ``DuplicateCustomerError`` if another customer holds one of them already."""
        claims = [
            (self.subject_keys.claim_digest(kind, value), str(customer.id))
            for kind, value in keys.items()
        ]
        self._raise_if_claimed(claims)
        return claims
