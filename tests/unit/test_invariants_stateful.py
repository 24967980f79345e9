"""Hypothesis drives random command sequences through the real application (embedded
store) and checks, after every step, that no invariant broke and that replaying the
stored events rebuilds an identical aggregate."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from aggregates.errors import DomainError
from aggregates.evaluation import EVALUATION_QUESTIONS, QUALIFICATION_CRITERIA
from aggregates.funnel import WON_STAGE
from aggregates.opportunity import Opportunity, Qualification, Status
from aggregates.plan import SalesPlan
from commands.ledger import SalesLedger
from services.settings import Settings
from tests.conftest import build_team

PEOPLE = ("rep1", "rep2", "rep3", "mgr", "vp", "other-mgr", "auditor", "admin")
amounts = st.integers(min_value=-5, max_value=10_000).map(Decimal)
stages = st.one_of(st.integers(min_value=1, max_value=7), st.integers(min_value=0, max_value=9))
reasons = st.sampled_from(["", "customer asked", "budget moved"])
people = st.one_of(st.just("rep1"), st.just("rep1"), st.sampled_from(PEOPLE))
criteria = st.one_of(
    st.just({c: True for c in QUALIFICATION_CRITERIA}),
    st.fixed_dictionaries({c: st.booleans() for c in QUALIFICATION_CRITERIA}),
)
answers = st.fixed_dictionaries({q: st.booleans() for q in EVALUATION_QUESTIONS})
days = st.integers(min_value=-30, max_value=200).map(lambda n: date(2026, 3, 1) + timedelta(days=n))


def replayed(ledger: SalesLedger, aggregate_id: str) -> object:
    """The aggregate rebuilt from nothing but its stored events."""
    aggregate = None
    for event in ledger.stored_events(UUID(aggregate_id)):
        aggregate = event.mutate(aggregate)
    return aggregate


class LedgerMachine(RuleBasedStateMachine):
    """Random commands by random people against one deal and one plan."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        path = Path(self.directory.name) / "ledger.db"
        self.ledger = SalesLedger(
            env=Settings(store="sqlite", sqlite_path=str(path)).event_store_env()
        )
        build_team(self.ledger)
        self.deal_id = ""
        self.plan_id = ""

    @initialize()
    def open_deal_and_plan(self) -> None:
        customer = self.ledger.register_customer(
            name="Acme", source="web", owner_id="rep1", actor="rep1"
        )
        self.deal_id = self.ledger.open_opportunity(
            customer_id=customer.aggregate_id,
            owner_id="rep1",
            title="t",
            source="web",
            amount=Decimal(1000),
            expected_close=date(2026, 6, 1),
            product="p",
            region="r",
            actor="rep1",
        ).aggregate_id
        self.plan_id = self.ledger.draft_plan(
            name="FY", period="2026", targets={"revenue": Decimal(1200)}, actor="vp"
        ).aggregate_id

    def attempt(self, command: object) -> None:
        with contextlib.suppress(DomainError):
            command()  # type: ignore[operator]

    @rule(actor=people, c=criteria)
    def qualify(self, actor: str, c: dict[str, bool]) -> None:
        self.attempt(lambda: self.ledger.qualify_opportunity(self.deal_id, c, actor=actor))

    @rule(actor=people, c=criteria, reason=reasons)
    def disqualify(self, actor: str, c: dict[str, bool], reason: str) -> None:
        self.attempt(
            lambda: self.ledger.disqualify_opportunity(self.deal_id, c, reason, actor=actor)
        )

    @rule(actor=people, a=answers)
    def evaluate(self, actor: str, a: dict[str, bool]) -> None:
        self.attempt(lambda: self.ledger.evaluate_opportunity(self.deal_id, a, actor=actor))

    @rule(actor=people, stage=stages, reason=reasons)
    def advance(self, actor: str, stage: int, reason: str) -> None:
        self.attempt(
            lambda: self.ledger.advance_stage(self.deal_id, stage, reason or None, actor=actor)
        )

    @rule(actor=people, owner=people, reason=reasons)
    def change_owner(self, actor: str, owner: str, reason: str) -> None:
        self.attempt(
            lambda: self.ledger.change_primary_owner(self.deal_id, owner, reason, actor=actor)
        )

    @rule(actor=people, member=people)
    def add_member(self, actor: str, member: str) -> None:
        self.attempt(
            lambda: self.ledger.add_team_member(self.deal_id, member, "support", actor=actor)
        )

    @rule(actor=people, member=people)
    def remove_member(self, actor: str, member: str) -> None:
        self.attempt(
            lambda: self.ledger.remove_team_member(self.deal_id, member, "done", actor=actor)
        )

    @rule(actor=people, amount=amounts, reason=reasons)
    def revise_amount(self, actor: str, amount: Decimal, reason: str) -> None:
        self.attempt(lambda: self.ledger.revise_amount(self.deal_id, amount, reason, actor=actor))

    @rule(actor=people, day=days)
    def revise_close(self, actor: str, day: date) -> None:
        self.attempt(lambda: self.ledger.revise_close_date(self.deal_id, day, "moved", actor=actor))

    @rule(actor=people, amount=amounts, day=days)
    def win(self, actor: str, amount: Decimal, day: date) -> None:
        self.attempt(lambda: self.ledger.win_opportunity(self.deal_id, amount, day, actor=actor))

    @rule(actor=people, reason=reasons, day=days)
    def lose(self, actor: str, reason: str, day: date) -> None:
        self.attempt(
            lambda: self.ledger.lose_opportunity(self.deal_id, reason, "Globex", day, actor=actor)
        )

    @rule(actor=people, reason=reasons, stage=stages)
    def reopen(self, actor: str, reason: str, stage: int) -> None:
        self.attempt(
            lambda: self.ledger.reopen_opportunity(self.deal_id, reason, stage, actor=actor)
        )

    @rule(
        actor=people,
        split=st.integers(min_value=0, max_value=1300),
        dimension=st.sampled_from(["region", "product"]),
    )
    def decompose(self, actor: str, split: int, dimension: str) -> None:
        allocations = {"a": {"revenue": Decimal(split)}, "b": {"revenue": Decimal(1200 - split)}}
        self.attempt(
            lambda: self.ledger.decompose_plan(
                self.plan_id, "total", dimension, allocations, actor=actor
            )
        )

    @rule(
        actor=people,
        total=st.integers(min_value=0, max_value=2000),
        child=st.integers(min_value=0, max_value=2000),
        direction=st.sampled_from(["top_down", "bottom_up", "sideways"]),
        reason=reasons,
    )
    def revise_plan(self, actor: str, total: int, child: int, direction: str, reason: str) -> None:
        plan = self.ledger.load(SalesPlan, self.plan_id)
        changes = {"total": {"revenue": Decimal(total)}}
        for path in plan.targets:
            if path.endswith("=a"):
                changes[path] = {"revenue": Decimal(child)}
        self.attempt(
            lambda: self.ledger.revise_plan(self.plan_id, changes, direction, reason, actor=actor)
        )

    @rule(actor=people)
    def approve(self, actor: str) -> None:
        self.attempt(lambda: self.ledger.approve_plan(self.plan_id, "ok", actor=actor))

    @invariant()
    def deal_is_consistent(self) -> None:
        if not self.deal_id:
            return
        deal = self.ledger.load(Opportunity, self.deal_id)
        assert 1 <= deal.stage <= WON_STAGE
        assert deal.amount > 0
        assert (deal.status == Status.WON) == (deal.stage == WON_STAGE)
        assert (deal.status == Status.WON) == (deal.won_amount is not None)
        assert (deal.status == Status.OPEN) == (deal.closed_on is None)
        if deal.is_open and deal.stage >= 2:
            assert deal.qualification == Qualification.QUALIFIED
        assert deal.owner_id not in deal.team
        assert self.ledger.organisation().has_role(deal.owner_id, *("sales_rep", "manager"))  # type: ignore[arg-type]
        assert replayed(self.ledger, self.deal_id) == deal

    @invariant()
    def plan_adds_up(self) -> None:
        if not self.plan_id:
            return
        plan = self.ledger.load(SalesPlan, self.plan_id)
        assert plan.violations(plan.targets) == []
        assert all(v >= 0 for targets in plan.targets.values() for v in targets.values())
        assert replayed(self.ledger, self.plan_id) == plan

    def teardown(self) -> None:
        self.ledger.close()
        self.directory.cleanup()


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerInvariants = LedgerMachine.TestCase
