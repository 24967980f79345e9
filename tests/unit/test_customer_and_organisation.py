"""Rules of customers (ownership belongs to the company) and of the organisation."""

from __future__ import annotations

import pytest

from aggregates.customer import Customer, normalise_name, uniqueness_keys
from aggregates.errors import NotAllowedError, NotFoundError, RuleViolationError
from aggregates.organisation import Organisation, Role
from events.customer import CustomerAssigned, CustomerClassified, CustomerRegistered
from events.organisation import ManagerChanged, PersonJoined
from tests.unit.domain_fixtures import new_events, organisation, settled


def customer(org: Organisation, owner: str | None = "rep1") -> Customer:
    return settled(
        Customer.register(
            name="Acme Trading Co., Ltd.",
            source="web",
            tax_id="91-3100",
            phone="+86 21 5555 0101",
            email="Buyer@Acme.example",
            owner_id=owner,
            profile={},
            actor=owner or "mgr",
            org=org,
        )
    )


def test_uniqueness_keys_normalise_what_people_type_differently() -> None:
    a = uniqueness_keys(
        "Acme Trading Co., Ltd.", "91-3100", "+86 21 5555 0101", "Buyer@Acme.example"
    )
    b = uniqueness_keys(
        "ACME trading company limited", "913100", "0086 21 5555 0101", " buyer@acme.example "
    )
    assert a == b
    assert normalise_name("Acme GmbH") == normalise_name("acme")


def test_registration_records_source_owner_and_actor() -> None:
    org = organisation()
    c = Customer.register(
        name="Acme",
        source="campaign",
        tax_id=None,
        phone=None,
        email=None,
        owner_id="rep1",
        profile={"city": "Shanghai"},
        actor="rep1",
        org=org,
    )
    [event] = new_events(c)
    assert isinstance(event, CustomerRegistered)
    assert (event.source, event.owner_id, event.actor) == ("campaign", "rep1", "rep1")


def test_a_rep_cannot_register_a_customer_for_someone_else() -> None:
    with pytest.raises(NotAllowedError):
        Customer.register(
            name="Acme",
            source="web",
            tax_id=None,
            phone=None,
            email=None,
            owner_id="rep2",
            profile={},
            actor="rep1",
            org=organisation(),
        )


def test_auditors_register_nothing() -> None:
    with pytest.raises(NotAllowedError):
        Customer.register(
            name="Acme",
            source="web",
            tax_id=None,
            phone=None,
            email=None,
            owner_id=None,
            profile={},
            actor="auditor",
            org=organisation(),
        )


def test_only_a_manager_above_both_owners_transfers_a_customer() -> None:
    org = organisation()
    c = customer(org)
    for actor in ("rep1", "rep2", "other-mgr", "auditor"):
        with pytest.raises(NotAllowedError):
            c.assign("rep2", "rebalance", actor, org)
    with pytest.raises(NotAllowedError):
        c.assign("rep3", "move", "mgr", org)
    c.assign("rep2", "rep1 on leave", "mgr", org)
    c.assign("rep3", "territory change", "vp", org)
    events = new_events(c)
    assert [type(e) for e in events] == [CustomerAssigned, CustomerAssigned]
    assert events[0].previous_owner_id == "rep1" and events[0].reason == "rep1 on leave"
    assert c.owner_id == "rep3" and c.previous_owner_ids == ["rep1", "rep2"]


def test_transfer_to_an_unknown_person_is_refused() -> None:
    org = organisation()
    with pytest.raises(NotFoundError):
        customer(org).assign("ghost", "x", "mgr", org)


def test_classification_is_one_of_the_configured_classes() -> None:
    c = customer(organisation())
    with pytest.raises(RuleViolationError):
        c.classify("Z", "x", "rep1")
    c.classify("A", "large account", "rep1")
    [event] = new_events(c)
    assert isinstance(event, CustomerClassified) and c.classification == "A"


def test_only_admins_change_the_organisation() -> None:
    org = organisation()
    with pytest.raises(NotAllowedError):
        org.join("new", "New", Role.SALES_REP, "mgr", "mgr")
    org.join("new", "New", Role.SALES_REP, "mgr", "admin")
    [event] = new_events(org)
    assert isinstance(event, PersonJoined) and org.chain_above("new") == ["mgr", "vp"]


def test_reporting_lines_never_form_a_cycle() -> None:
    org = organisation()
    with pytest.raises(RuleViolationError, match="cycle"):
        org.change_manager("vp", "mgr", "reorg", "admin")
    org.change_manager("rep1", "other-mgr", "moved team", "admin")
    [event] = new_events(org)
    assert isinstance(event, ManagerChanged) and event.reason == "moved team"
    assert org.subtree("other-mgr") == {"other-mgr", "rep3", "rep1"}


def test_a_manager_with_reports_cannot_leave_or_lose_the_role() -> None:
    org = organisation()
    with pytest.raises(RuleViolationError, match="reports"):
        org.leave("mgr", "resigned", "admin")
    with pytest.raises(RuleViolationError, match="reports"):
        org.change_role("mgr", Role.SALES_REP, "demoted", "admin")
    org.leave("rep2", "resigned", "admin")
    assert not org.has_role("rep2", Role.SALES_REP)
