"""Every field a user types is checked against the brief's enumerations or the
organisation's configuration, with a message naming the field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from aggregates.customer import Customer, uniqueness_keys
from aggregates.errors import RuleViolationError
from aggregates.field_rules import normalise_phone
from aggregates.opportunity import Opportunity
from aggregates.organisation import Organisation
from events.organisation import ConfigurationChanged
from tests.unit.domain_fixtures import new_events, opportunity, organisation


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({"sales_mode": "auction"}, "details.sales_mode"),
        ({"tender_type": "whim"}, "details.tender_type"),
        ({"relationship_level": "95%"}, "details.relationship_level"),
        ({"quantity": -5}, "details.quantity"),
        ({"quote": "lots"}, "details.quote"),
        ({"lots": 1.5}, "details.lots"),
        ({"delivery_date": "soon"}, "details.delivery_date"),
        ({"favourite_colour": "red"}, "details.favourite_colour"),
    ],
)
def test_bid_details_refuse_what_the_brief_does_not_know(
    details: dict[str, Any], field: str
) -> None:
    with pytest.raises(RuleViolationError, match=f"^{field}:"):
        opportunity(organisation()).record_bid_details(details, "rep1")


def test_bid_details_of_the_brief_are_recorded() -> None:
    deal = opportunity(organisation())
    deal.record_bid_details(
        {
            "sales_mode": "bid",
            "tender_type": "public",
            "relationship_level": ">80%",
            "quantity": 0,
            "expected_price": "12.50",
            "competing_brands": ["ABB"],
            "delivery_date": "2026-09-30",
        },
        "rep1",
    )
    assert deal.bid_details["sales_mode"] == "bid"


@pytest.mark.parametrize("closed_on", [date(2030, 1, 1), date(1999, 1, 1), date(2026, 1, 1)])
def test_closing_dates_lie_between_the_opening_and_today(closed_on: date) -> None:
    deal = opportunity(organisation(), stage=7)  # opened 2026-01-02
    with pytest.raises(RuleViolationError, match="^closed_on:"):
        deal.win(Decimal(100), closed_on, "rep1")
    with pytest.raises(RuleViolationError, match="^closed_on:"):
        deal.lose("price", None, closed_on, "rep1")


def open_deal(org: Organisation, **overrides: Any) -> Opportunity:
    values: dict[str, Any] = {
        "customer_id": "c-1",
        "owner_id": "rep1",
        "title": "ERP",
        "source": "referral",
        "amount": Decimal(10),
        "expected_close": date(2026, 6, 30),
        "product": "erp",
        "region": "north",
        "actor": "rep1",
        "org": org,
    }
    return Opportunity.open(**{**values, **overrides})


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"source": "telepathy"}, "source"),
        ({"expected_close": date(2099, 1, 1)}, "expected_close"),
        ({"expected_close": date(1990, 1, 1)}, "expected_close"),
        ({"product": "toaster"}, "product"),
        ({"region": "mars"}, "region"),
    ],
)
def test_opening_checks_configured_values(override: dict[str, Any], field: str) -> None:
    org = organisation()
    org.configure({"products": ["erp"], "regions": ["north"]}, "our catalogue", "admin")
    with pytest.raises(RuleViolationError, match=f"^{field}:"):
        open_deal(org, **override)


def test_customers_refuse_unknown_sources_bad_e_mails_and_phones() -> None:
    org = organisation()
    base: dict[str, Any] = {
        "name": "Acme",
        "source": "web",
        "tax_id": None,
        "phone": None,
        "email": None,
        "owner_id": None,
        "profile": {},
        "actor": "rep1",
        "org": org,
    }
    for override, field in (
        ({"source": "telepathy"}, "source"),
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me maybe"}, "phone"),
        ({"profile": {"email": "nope"}}, "profile.email"),
    ):
        with pytest.raises(RuleViolationError, match=f"^{field}:"):
            Customer.register(**{**base, **override})


def test_phones_are_normalised_with_the_organisations_country_code() -> None:
    assert (
        normalise_phone("030 1234567", "49")
        == normalise_phone("+49 30 1234567", "49")
        == normalise_phone("0049 (30) 123-4567", "49")
        == "49301234567"
    )
    assert uniqueness_keys("A", None, "021 5555 0100", None, "86")["phone"] == "862155550100"


def test_configuration_changes_are_events_with_a_reason_and_checked() -> None:
    org = organisation()
    org.configure({"stale_days": 21, "country_code": "49"}, "Berlin office", "admin")
    event = new_events(org)[-1]
    assert isinstance(event, ConfigurationChanged)
    assert (event.actor, event.reason, org.configuration.stale_days) == (
        "admin",
        "Berlin office",
        21,
    )
    for changes, field in (
        ({"colour": "red"}, "colour"),
        ({"stale_days": 0}, "stale_days"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"sources": ["Not A Name"]}, "sources"),
        ({"stage_probabilities": {str(s): 50 - s for s in range(1, 8)}}, "stage_probabilities"),
    ):
        with pytest.raises(RuleViolationError, match=f"^{field}:"):
            org.configure(changes, "try", "admin")
