"""Commands of opportunities: open, qualify, evaluate, advance, team, value, outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate

from aggregates.customer import Customer
from aggregates.opportunity import Opportunity
from commands.application import CommandResult, LedgerApplication


class OpportunityCommands(LedgerApplication):
    """Opportunities' commands: each one a load → decide → save of one deal."""

    def open_opportunity(
        self,
        *,
        customer_id: str,
        owner_id: str,
        title: str,
        source: str,
        amount: Decimal,
        expected_close: date,
        product: str,
        region: str,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            self._read_visible(Customer, customer_id, "the deal's customer", actor, org)
            opportunity = Opportunity.open(
                customer_id=customer_id,
                owner_id=owner_id,
                title=title,
                source=source,
                amount=amount,
                expected_close=expected_close,
                product=product,
                region=region,
                actor=actor,
                org=org,
            )
            return opportunity, ()

        return self._run(actor, command_id, decide)

    def qualify_opportunity(
        self,
        opportunity_id: str,
        criteria: dict[str, bool],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity, opportunity_id, actor, command_id, lambda o, _: o.qualify(criteria, actor)
        )

    def disqualify_opportunity(
        self,
        opportunity_id: str,
        criteria: dict[str, bool],
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.disqualify(criteria, reason, actor),
        )

    def evaluate_opportunity(
        self,
        opportunity_id: str,
        answers: dict[str, bool],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity, opportunity_id, actor, command_id, lambda o, _: o.evaluate(answers, actor)
        )

    def advance_stage(
        self,
        opportunity_id: str,
        to_stage: int,
        reason: str | None = None,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.advance_stage(to_stage, reason, actor),
        )

    def change_primary_owner(
        self,
        opportunity_id: str,
        owner_id: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            opportunity = self.load(Opportunity, opportunity_id)
            opportunity.change_primary_owner(owner_id, reason, actor, org)
            return opportunity, ()

        return self._run(actor, command_id, decide)

    def add_team_member(
        self,
        opportunity_id: str,
        person_id: str,
        role: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, org: o.add_team_member(person_id, role, actor, org),
        )

    def remove_team_member(
        self,
        opportunity_id: str,
        person_id: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.remove_team_member(person_id, reason, actor),
        )

    def record_bid_details(
        self,
        opportunity_id: str,
        details: dict[str, Any],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.record_bid_details(details, actor),
        )

    def revise_amount(
        self,
        opportunity_id: str,
        amount: Decimal,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.revise_amount(amount, reason, actor),
        )

    def revise_close_date(
        self,
        opportunity_id: str,
        expected_close: date,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, org: o.revise_close_date(expected_close, reason, actor, org),
        )

    def log_opportunity_activity(
        self,
        opportunity_id: str,
        kind: str,
        summary: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.log_activity(kind, summary, actor),
        )

    def win_opportunity(
        self,
        opportunity_id: str,
        amount: Decimal,
        closed_on: date,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.win(amount, closed_on, actor),
        )

    def lose_opportunity(
        self,
        opportunity_id: str,
        reason: str,
        competitor: str | None,
        closed_on: date,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.lose(reason, competitor, closed_on, actor),
        )

    def reopen_opportunity(
        self,
        opportunity_id: str,
        reason: str,
        stage: int,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.reopen(reason, stage, actor),
        )
