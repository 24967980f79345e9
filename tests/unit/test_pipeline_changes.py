"""The pipeline-changes waterfall: it reconciles exactly and equals two as-of funnels."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregates.errors import DomainError
from aggregates.opportunity import Opportunity
from commands.ledger import SalesLedger
from events.base import recorded_at
from projections.funnel import FunnelFilter, fold_funnel_as_of
from projections.pipeline_changes import pipeline_changes
from services.analytics.events import recorded_events
from services.settings import Settings
from tests.conftest import build_team
from tests.unit.domain_fixtures import ALL_MET

EPOCH = datetime(2026, 1, 1, 8, tzinfo=UTC)
OWNERS = ("rep1", "rep2", "rep3")


@contextmanager
def fresh_ledger() -> Iterator[SalesLedger]:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(store="sqlite", sqlite_path=str(Path(folder) / "ledger.db"))
        ledger = SalesLedger(env=settings.event_store_env())
        with recorded_at(EPOCH - timedelta(days=1)):
            build_team(ledger)
        yield ledger
        ledger.close()


OPERATIONS = st.sampled_from(
    [
        "qualify",
        "advance",
        "advance",
        "back",
        "amount",
        "push",
        "pull",
        "owner",
        "win",
        "lose",
        "reopen",
        "disqualify",
    ]
)
STEP = st.tuples(st.integers(0, 5), OPERATIONS, st.integers(1, 90))


def _act(ledger: SalesLedger, deal: str, operation: str, value: int, day: date) -> None:
    current = ledger.read(Opportunity, deal)
    stage = current.stage
    actions = {
        "qualify": lambda: ledger.qualify_opportunity(deal, ALL_MET, actor="admin"),
        "advance": lambda: ledger.advance_stage(deal, min(stage + 1 + value % 4, 7), actor="admin"),
        "back": lambda: ledger.advance_stage(deal, max(stage - 1, 1), "rework", actor="admin"),
        "amount": lambda: ledger.revise_amount(
            deal, Decimal(value * 1000 + 7), "re-scoped", actor="admin"
        ),
        "push": lambda: ledger.revise_close_date(
            deal, current.expected_close + timedelta(days=value), "slipped", actor="admin"
        ),
        "pull": lambda: ledger.revise_close_date(
            deal, current.expected_close - timedelta(days=value), "sooner", actor="admin"
        ),
        "owner": lambda: ledger.change_primary_owner(
            deal, OWNERS[value % 3], "rebalanced", actor="admin"
        ),
        "win": lambda: ledger.win_opportunity(deal, Decimal(value * 900), day, actor="admin"),
        "lose": lambda: ledger.lose_opportunity(deal, "price", "Globex", day, actor="admin"),
        "reopen": lambda: ledger.reopen_opportunity(deal, "came back", 1, actor="admin"),
        "disqualify": lambda: ledger.disqualify_opportunity(
            deal, {**ALL_MET, "budget": False}, "no budget", actor="admin"
        ),
    }
    with suppress(DomainError):
        actions[operation]()


def _build(
    ledger: SalesLedger, openings: list[tuple[int, int]], steps: list[tuple[int, str, int]]
) -> int:
    """Deals opened and worked, one event-time step (an hour) apart; the last hour used."""
    customer = ledger.register_customer(name="Acme", source="web", actor="admin").aggregate_id
    deals: list[str] = []
    hour = 0
    for owner, amount in openings:
        hour += 1
        with recorded_at(EPOCH + timedelta(hours=hour)):
            deals.append(
                ledger.open_opportunity(
                    customer_id=customer,
                    owner_id=OWNERS[owner],
                    title=f"deal {len(deals)}",
                    source="web",
                    amount=Decimal(amount * 1000),
                    expected_close=date(2026, 3, 1) + timedelta(days=amount),
                    product="erp",
                    region="north" if owner < 2 else "south",
                    actor="admin",
                ).aggregate_id
            )
            if amount % 3:
                ledger.qualify_opportunity(deals[-1], ALL_MET, actor="admin")
    for index, operation, value in steps:
        hour += 1
        moment = EPOCH + timedelta(hours=hour)
        with recorded_at(moment):
            _act(ledger, deals[index % len(deals)], operation, value, moment.date())
    return hour


SCOPES = st.sampled_from(
    [
        FunnelFilter(),
        FunnelFilter(owner_ids={"rep1", "rep2"}),
        FunnelFilter(region="north"),
        FunnelFilter(close_from=date(2026, 3, 15), close_to=date(2026, 4, 30)),
        FunnelFilter(owner_ids={"rep3"}, close_from=date(2026, 3, 1), close_to=date(2026, 5, 31)),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    openings=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 90)), min_size=2, max_size=6),
    steps=st.lists(STEP, min_size=8, max_size=40),
    cut=st.tuples(st.integers(0, 40), st.integers(1, 40)),
    scope=SCOPES,
)
def test_waterfall_reconciles_and_equals_two_as_of_funnels(
    openings: list[tuple[int, int]],
    steps: list[tuple[int, str, int]],
    cut: tuple[int, int],
    scope: FunnelFilter,
) -> None:
    with fresh_ledger() as ledger:
        _build(ledger, openings, steps)
        t1 = EPOCH + timedelta(hours=cut[0], minutes=30)
        t2 = t1 + timedelta(hours=cut[1])
        changes = pipeline_changes(recorded_events(ledger), t1, t2, scope)
        before = fold_funnel_as_of(ledger, t1, scope)
        after = fold_funnel_as_of(ledger, t2, scope)
    assert changes.reconciled
    total = changes.start.count + sum(s.count for s in changes.steps)
    amount = changes.start.amount + sum(s.amount for s in changes.steps)
    weight = changes.start.weighted_amount + sum(s.weighted_amount for s in changes.steps)
    assert (total, amount, weight) == (
        changes.end.count,
        changes.end.amount,
        changes.end.weighted_amount,
    )
    assert (changes.start.count, changes.start.amount) == (before.open_count, before.open_amount)
    assert changes.start.weighted_amount == before.weighted_amount
    assert (changes.end.count, changes.end.amount) == (after.open_count, after.open_amount)
    assert changes.end.weighted_amount == after.weighted_amount
    for step in changes.steps:
        assert step.count == sum(d.count for d in step.deals)
        assert step.amount == sum((d.amount for d in step.deals), Decimal(0))


def test_each_change_lands_in_its_step_with_its_deal() -> None:
    with fresh_ledger() as ledger:
        customer = ledger.register_customer(name="Acme", source="web", actor="admin").aggregate_id

        def open_deal(title: str, amount: int, close: date) -> str:
            return ledger.open_opportunity(
                customer_id=customer,
                owner_id="rep1",
                title=title,
                source="web",
                amount=Decimal(amount),
                expected_close=close,
                product="erp",
                region="north",
                actor="admin",
            ).aggregate_id

        in_q2 = date(2026, 5, 15)
        with recorded_at(EPOCH):
            pushed, grown, won = (open_deal(t, 1000, in_q2) for t in ("pushed", "grown", "won"))
            for deal in (grown, won):
                ledger.qualify_opportunity(deal, ALL_MET, actor="admin")
        with recorded_at(EPOCH + timedelta(days=1)):
            ledger.advance_stage(won, 7, actor="admin")
        t1 = EPOCH + timedelta(days=2)
        with recorded_at(t1 + timedelta(hours=1)):
            ledger.revise_close_date(pushed, date(2026, 6, 20), "later", actor="admin")
            ledger.revise_close_date(pushed, date(2026, 7, 20), "later again", actor="admin")
            ledger.revise_amount(grown, Decimal(1500), "more seats", actor="admin")
            ledger.advance_stage(grown, 3, actor="admin")
            ledger.win_opportunity(won, Decimal(900), date(2026, 1, 4), actor="admin")
            new = open_deal("new", 400, in_q2)
        q2 = FunnelFilter(close_from=date(2026, 4, 1), close_to=date(2026, 6, 30))
        changes = pipeline_changes(recorded_events(ledger), t1, t1 + timedelta(days=1), q2)
    steps = {s.step: s for s in changes.steps}
    assert (changes.start.count, changes.start.amount) == (3, Decimal(3000))
    assert [d.opportunity_id for d in steps["pushed_out"].deals] == [pushed]
    assert steps["pushed_out"].amount == Decimal(-1000)
    assert (steps["won"].count, steps["won"].weighted_amount) == (-1, Decimal("-900.00"))
    assert steps["amount_increased"].amount == Decimal(500)
    assert steps["amount_increased"].weighted_amount == Decimal("25.00")  # at stage 1's 5 %
    assert steps["stage_advanced"].weighted_amount == Decimal("225.00")  # 1500 × (20 − 5) %
    assert [d.opportunity_id for d in steps["new"].deals] == [new]
    assert [(m.opportunity_id, m.times) for m in changes.pushed] == [(pushed, 2)]
    assert (changes.end.count, changes.end.amount) == (2, Decimal(1900))
    assert changes.reconciled
