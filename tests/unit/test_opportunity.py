"""Given events, when a command, then events or an error: the opportunity's rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.evaluation import EVALUATION_QUESTIONS
from aggregates.opportunity import Opportunity, Qualification, Status
from events.opportunity import (
    AmountRevised,
    OpportunityDisqualified,
    OpportunityEvaluated,
    OpportunityLost,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityWon,
    PrimaryOwnerChanged,
    StageAdvanced,
    TeamMemberAdded,
)
from tests.unit.domain_fixtures import ALL_MET, new_events, opportunity, organisation


def test_opening_records_who_and_what() -> None:
    org = organisation()
    deal = Opportunity.open(
        customer_id="c-1",
        owner_id="rep1",
        title="t",
        source="web",
        amount=Decimal("10"),
        expected_close=date(2026, 1, 1),
        product="p",
        region="r",
        actor="mgr",
        org=org,
    )
    [event] = new_events(deal)
    assert isinstance(event, OpportunityOpened)
    assert (
        event.actor,
        event.owner_id,
        event.amount,
        event.stage if hasattr(event, "stage") else 1,
    ) == (
        "mgr",
        "rep1",
        Decimal("10"),
        1,
    )
    assert deal.stage == 1 and deal.status == Status.OPEN


@pytest.mark.parametrize("amount", [Decimal(0), Decimal("-1")])
def test_opening_needs_a_positive_amount(amount: Decimal) -> None:
    with pytest.raises(RuleViolationError, match="positive"):
        Opportunity.open(
            customer_id="c",
            owner_id="rep1",
            title="t",
            source="web",
            amount=amount,
            expected_close=date(2026, 1, 1),
            product="p",
            region="r",
            actor="rep1",
            org=organisation(),
        )


def test_a_rep_cannot_open_a_deal_for_another_rep() -> None:
    with pytest.raises(NotAllowedError):
        Opportunity.open(
            customer_id="c",
            owner_id="rep2",
            title="t",
            source="web",
            amount=Decimal(1),
            expected_close=date(2026, 1, 1),
            product="p",
            region="r",
            actor="rep1",
            org=organisation(),
        )


def test_advancing_before_qualification_is_refused() -> None:
    deal = opportunity(organisation())
    with pytest.raises(RuleViolationError, match="qualify"):
        deal.advance_stage(2, None, "rep1")
    assert new_events(deal) == []


def test_advancing_forward_records_from_and_to() -> None:
    deal = opportunity(organisation(), qualified=True)
    deal.advance_stage(3, None, "rep1")
    [event] = new_events(deal)
    assert isinstance(event, StageAdvanced)
    assert (event.from_stage, event.to_stage, event.actor) == (1, 3, "rep1")


def test_moving_back_needs_a_reason() -> None:
    deal = opportunity(organisation(), stage=4)
    with pytest.raises(RuleViolationError, match="reason"):
        deal.advance_stage(2, None, "rep1")
    deal.advance_stage(2, "budget cut", "rep1")
    [event] = new_events(deal)
    assert event.reason == "budget cut" and deal.stage == 2


@pytest.mark.parametrize("stage", [0, 8, 9])
def test_only_open_stages_can_be_reached_by_advancing(stage: int) -> None:
    deal = opportunity(organisation(), stage=3)
    with pytest.raises(RuleViolationError):
        deal.advance_stage(stage, "x", "rep1")


def test_qualification_needs_every_criterion_met() -> None:
    deal = opportunity(organisation())
    with pytest.raises(RuleViolationError, match="missing"):
        deal.qualify({"budget": True}, "rep1")
    with pytest.raises(RuleViolationError, match="not met"):
        deal.qualify({**ALL_MET, "budget": False}, "rep1")


def test_disqualified_deals_go_back_to_nurturing() -> None:
    deal = opportunity(organisation())
    deal.disqualify({**ALL_MET, "budget": False}, "no budget this year", "rep1")
    [event] = new_events(deal)
    assert isinstance(event, OpportunityDisqualified)
    assert deal.qualification == Qualification.NURTURING


def test_evaluation_scores_twenty_questions_and_marks_high_value_above_ten() -> None:
    deal = opportunity(organisation())
    answers = {q: i < 11 for i, q in enumerate(EVALUATION_QUESTIONS)}
    deal.evaluate(answers, "rep1")
    [event] = new_events(deal)
    assert isinstance(event, OpportunityEvaluated)
    assert (event.score, event.high_value) == (11, True)
    deal.evaluate({q: i < 10 for i, q in enumerate(EVALUATION_QUESTIONS)}, "rep1")
    [event] = new_events(deal)
    assert (event.score, event.high_value) == (10, False)


def test_evaluation_refuses_missing_questions() -> None:
    with pytest.raises(RuleViolationError, match="20 questions"):
        opportunity(organisation()).evaluate({"margin": True}, "rep1")


def test_only_the_owners_superior_changes_the_primary_owner() -> None:
    org = organisation()
    deal = opportunity(org)
    for outsider in ("rep1", "rep2", "other-mgr", "auditor"):
        with pytest.raises(NotAllowedError):
            deal.change_primary_owner("rep2", "rebalance", outsider, org)
    deal.change_primary_owner("rep2", "rebalance", "mgr", org)
    deal.change_primary_owner("rep1", "back", "vp", org)
    events = new_events(deal)
    assert [type(e) for e in events] == [PrimaryOwnerChanged, PrimaryOwnerChanged]
    assert events[0].previous_owner_id == "rep1" and deal.owner_id == "rep1"


def test_team_members_are_added_once() -> None:
    org = organisation()
    deal = opportunity(org)
    deal.add_team_member("rep3", "presales", "rep1", org)
    with pytest.raises(RuleViolationError):
        deal.add_team_member("rep3", "presales", "rep1", org)
    with pytest.raises(RuleViolationError):
        deal.add_team_member("rep1", "owner", "rep1", org)
    assert [type(e) for e in new_events(deal)] == [TeamMemberAdded]
    assert deal.may_change("rep3", org) and not deal.may_change("rep2", org)


def test_winning_needs_negotiation_stage() -> None:
    deal = opportunity(organisation(), stage=5)
    with pytest.raises(RuleViolationError, match="stage 7"):
        deal.win(Decimal(100), date(2026, 5, 1), "rep1")
    deal.advance_stage(7, None, "rep1")
    deal.win(Decimal(100), date(2026, 5, 1), "rep1")
    assert isinstance(new_events(deal)[-1], OpportunityWon)
    assert (deal.status, deal.stage, deal.won_amount) == (Status.WON, 8, Decimal(100))


def test_closed_deals_refuse_changes_except_a_recorded_reopen() -> None:
    org = organisation()
    deal = opportunity(org, stage=3)
    deal.lose("price", "Globex", date(2026, 4, 1), "rep1")
    assert isinstance(new_events(deal)[-1], OpportunityLost)
    changes: list[Callable[[], None]] = [
        lambda: deal.advance_stage(4, None, "rep1"),
        lambda: deal.revise_amount(Decimal(1), "x", "rep1"),
        lambda: deal.add_team_member("rep2", "x", "rep1", org),
        lambda: deal.win(Decimal(1), date(2026, 1, 1), "rep1"),
        lambda: deal.lose("again", None, date(2026, 1, 1), "rep1"),
    ]
    for change in changes:
        with pytest.raises(RuleViolationError, match="reopen"):
            change()
    with pytest.raises(RuleViolationError, match="reason"):
        deal.reopen(" ", 3, "rep1")
    deal.reopen("customer came back", 3, "rep1")
    assert isinstance(new_events(deal)[-1], OpportunityReopened)
    assert deal.is_open and deal.stage == 3 and deal.lost_reason is None


def test_revisions_record_the_previous_value_and_reason() -> None:
    deal = opportunity(organisation())
    deal.revise_amount(Decimal("60000"), "scope grew", "rep1")
    [event] = new_events(deal)
    assert isinstance(event, AmountRevised)
    assert (event.previous_amount, event.amount, event.reason) == (
        Decimal("50000"),
        Decimal("60000"),
        "scope grew",
    )
    with pytest.raises(RuleViolationError, match="unchanged"):
        deal.revise_amount(Decimal("60000"), "again", "rep1")


def test_a_lost_deal_needs_a_reason() -> None:
    with pytest.raises(RuleViolationError, match="reason"):
        opportunity(organisation()).lose("  ", None, date(2026, 1, 1), "rep1")
