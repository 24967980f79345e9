"""Field history of any aggregate, and the deal flags, from the domain events alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aggregates.opportunity import Opportunity
from aggregates.organisation import Organisation
from events.base import recorded_at
from projections.field_history import FlagThresholds, deal_flags, field_changes
from tests.unit.domain_fixtures import opportunity, organisation

WORKED_AT = datetime(2026, 2, 1, 9, tzinfo=UTC)


def _worked_deal() -> tuple[Opportunity, list[Any]]:
    org = organisation()
    with recorded_at(WORKED_AT):
        return _worked(org)


def _worked(org: Organisation) -> tuple[Opportunity, list[Any]]:
    deal = Opportunity.open(
        customer_id="c-1",
        owner_id="rep1",
        title="ERP",
        source="web",
        amount=Decimal(10000),
        expected_close=date(2026, 3, 31),
        product="erp",
        region="north",
        actor="rep1",
        org=org,
    )
    deal.revise_close_date(date(2026, 4, 30), "budget round", "rep1")
    deal.revise_close_date(date(2026, 6, 30), "again", "rep1")
    deal.revise_amount(Decimal(7000), "fewer seats", "rep1")
    deal.add_team_member("rep2", "presales", "mgr", org)
    events = list(deal.collect_events())
    return deal, events


def test_every_field_change_says_old_new_who_when_and_why() -> None:
    _, events = _worked_deal()

    changes = field_changes(events)

    closes = [(c.old, c.new, c.reason, c.actor) for c in changes if c.field == "expected_close"]
    assert closes == [
        (None, "2026-03-31", None, "rep1"),
        ("2026-03-31", "2026-04-30", "budget round", "rep1"),
        ("2026-04-30", "2026-06-30", "again", "rep1"),
    ]
    team = [(c.field, c.old, c.new, c.actor) for c in field_changes(events, "team")]
    assert team == [("team.rep2", None, "presales", "mgr")]
    assert all(
        c.at == e.timestamp for c in changes for e in events if e.originator_version == c.version
    )


def test_flags_pushed_amount_down_idle_and_close_passed() -> None:
    _, events = _worked_deal()
    later = WORKED_AT + timedelta(days=180)

    flags = deal_flags(
        events, later, FlagThresholds(pushed_times=2, amount_drop_percent=Decimal(25))
    )

    assert flags is not None
    assert flags.pushed_times == 2
    assert flags.amount_drop_percent == Decimal("30.00")
    assert flags.flags == ["pushed", "amount_down", "no_activity", "close_date_passed"]
    calm = deal_flags(
        events,
        events[-1].timestamp,
        FlagThresholds(pushed_times=3, amount_drop_percent=Decimal(30)),
    )
    assert calm is not None and calm.flags == []


def test_a_settled_fixture_deal_has_a_field_history_from_its_first_event() -> None:
    org = organisation()
    deal = Opportunity.open(
        customer_id="c-1",
        owner_id="rep1",
        title="CRM",
        source="web",
        amount=Decimal(5),
        expected_close=date(2026, 1, 1),
        product="crm",
        region="south",
        actor="rep1",
        org=org,
    )
    changes = field_changes(deal.collect_events())
    assert {c.field for c in changes} >= {"owner_id", "amount", "stage", "status"}
    assert opportunity(org).stage == 1
