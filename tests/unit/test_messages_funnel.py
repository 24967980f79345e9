"""The example subscriber's pure fold: funnel, de-duplication by ce_id, version gaps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from events.messages import ReceivedEvent
from services.subscriber import FunnelCell, FunnelFold, fold_funnel


def received(deal: str, version: int, name: str, **data: Any) -> ReceivedEvent:
    return ReceivedEvent(
        event_id=f"{deal}:{version}",
        event_type=f"salesledger.opportunity.{name}.v1",
        aggregate_type="opportunity",
        event_name=name,
        schema_version=1,
        aggregate_id=deal,
        aggregate_version=version,
        position=version,
        time="2025-01-01T00:00:00+00:00",
        data=data,
    )


def deal_history(deal: str) -> list[ReceivedEvent]:
    return [
        received(deal, 1, "OpportunityOpened", amount="100"),
        received(deal, 2, "OpportunityQualified"),
        received(deal, 3, "StageAdvanced", from_stage=1, to_stage=4),
        received(deal, 4, "AmountRevised", amount="150.50", previous_amount="100"),
    ]


def test_opened_deals_start_open_at_stage_one() -> None:
    fold = fold_funnel([received("a", 1, "OpportunityOpened", amount="100")])
    assert fold.funnel() == {(1, "open"): FunnelCell(1, Decimal("100"))}


def test_stage_and_amount_follow_the_events() -> None:
    fold = fold_funnel([*deal_history("a"), *deal_history("b")])
    assert fold.funnel() == {(4, "open"): FunnelCell(2, Decimal("301.00"))}


def test_won_deals_count_their_won_amount_at_stage_eight() -> None:
    events = [*deal_history("a"), received("a", 5, "OpportunityWon", amount="140")]
    assert fold_funnel(events).funnel() == {(8, "won"): FunnelCell(1, Decimal("140"))}


def test_lost_deals_stay_at_their_stage() -> None:
    events = [*deal_history("a"), received("a", 5, "OpportunityLost", reason="price")]
    assert fold_funnel(events).funnel() == {(4, "lost"): FunnelCell(1, Decimal("150.50"))}


def test_reopened_deals_return_open_with_their_expected_amount() -> None:
    events = [
        *deal_history("a"),
        received("a", 5, "OpportunityWon", amount="140"),
        received("a", 6, "OpportunityReopened", reason="contract voided", stage=7),
    ]
    assert fold_funnel(events).funnel() == {(7, "open"): FunnelCell(1, Decimal("150.50"))}


def test_disqualified_deals_go_back_to_stage_one() -> None:
    events = [
        received("a", 1, "OpportunityOpened", amount="100"),
        received("a", 2, "OpportunityDisqualified", reason="no budget"),
    ]
    assert fold_funnel(events).funnel() == {(1, "open"): FunnelCell(1, Decimal("100"))}


def test_duplicates_are_dropped_by_event_id() -> None:
    history = deal_history("a")
    fold = fold_funnel([*history[:3], *history[1:], *history])
    assert fold.funnel() == {(4, "open"): FunnelCell(1, Decimal("150.50"))}
    assert fold.duplicates == 2 + 4
    assert fold.gaps == []


def test_missing_versions_are_reported_as_gaps() -> None:
    history = deal_history("a")
    fold = FunnelFold()
    assert fold.apply(history[0]) == "applied"
    assert fold.apply(history[2]) == "gap"
    assert [(g.aggregate_id, g.expected_version, g.received_version) for g in fold.gaps] == [
        ("a", 2, 3)
    ]


def test_a_deal_first_seen_past_version_one_is_a_gap() -> None:
    fold = fold_funnel(deal_history("a")[2:])
    assert len(fold.gaps) == 1
    assert fold.gaps[0].expected_version == 1


def test_other_aggregates_are_ignored() -> None:
    customer = ReceivedEvent(
        "c:1",
        "salesledger.customer.CustomerRegistered.v1",
        "customer",
        "CustomerRegistered",
        1,
        "c",
        1,
        1,
        "2025-01-01T00:00:00+00:00",
        {},
    )
    fold = FunnelFold()
    assert fold.apply(customer) == "ignored"
    assert fold.funnel() == {}


def test_state_survives_a_round_trip_through_json() -> None:
    fold = fold_funnel([*deal_history("a"), received("b", 2, "StageAdvanced", to_stage=3)])
    restored = FunnelFold.from_json(fold.to_json())
    assert restored == fold


@given(st.lists(st.integers(min_value=0, max_value=4), max_size=30))
def test_redelivery_never_changes_the_funnel(replays: list[int]) -> None:
    """At-least-once delivery: any re-sent prefix of a deal's history is harmless."""
    history = [*deal_history("a"), received("a", 5, "OpportunityWon", amount="140")]
    delivered = list(history)
    for start in replays:
        delivered.extend(history[start:])
    fold = fold_funnel(delivered)
    assert fold.funnel() == fold_funnel(history).funnel()
    assert fold.gaps == []
