"""Commands of sales plans: draft, decompose, revise, propose (bottom-up), approve."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from eventsourcing.domain import Aggregate

from aggregates.customer import Customer
from aggregates.errors import NotFoundError, RuleViolationError
from aggregates.organisation import Organisation
from aggregates.plan import SalesPlan
from commands.application import CommandResult, LedgerApplication


class PlanCommands(LedgerApplication):
    """Sales plans' commands."""

    def draft_plan(
        self,
        *,
        name: str,
        period: str,
        targets: dict[str, Decimal],
        actor: str,
        unit: str | None = None,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            plan = SalesPlan.draft(
                name=name, period=period, targets=targets, actor=actor, org=org, unit=unit
            )
            return plan, ()

        return self._run(actor, command_id, decide)

    def decompose_plan(
        self,
        plan_id: str,
        parent: str,
        dimension: str,
        allocations: dict[str, dict[str, Decimal]],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        if dimension == "customer":
            for key in allocations:
                self._require_customer(key)
        return self._plan_change(
            plan_id,
            actor,
            command_id,
            lambda p, org: p.decompose(parent, dimension, allocations, actor, org),
        )

    def revise_plan(
        self,
        plan_id: str,
        changes: dict[str, dict[str, Decimal]],
        direction: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._plan_change(
            plan_id,
            actor,
            command_id,
            lambda p, org: p.revise(changes, direction, reason, actor, org),
        )

    def propose_plan_targets(
        self,
        plan_id: str,
        path: str,
        targets: dict[str, Decimal],
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        """Bottom-up: the person a node is for proposes its targets."""
        return self._plan_change(
            plan_id, actor, command_id, lambda p, org: p.propose(path, targets, reason, actor, org)
        )

    def approve_plan(
        self, plan_id: str, note: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        return self._plan_change(
            plan_id, actor, command_id, lambda p, org: p.approve(note, actor, org)
        )

    def _plan_change(
        self,
        plan_id: str,
        actor: str,
        command_id: str | None,
        act: Callable[[SalesPlan, Organisation], None],
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            plan = self.load(SalesPlan, plan_id)
            act(plan, org)
            return plan, ()

        return self._run(actor, command_id, decide)

    def _require_customer(self, customer_id: str) -> None:
        try:
            self.load(Customer, customer_id)
        except (NotFoundError, ValueError):
            raise RuleViolationError(f"customer: no customer {customer_id!r}") from None
