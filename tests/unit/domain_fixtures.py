"""Builders for the domain tests: an organisation and aggregates with their history settled."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate

from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.opportunity import Opportunity
from aggregates.organisation import Organisation, Role
from events.base import recorded_at

A = TypeVar("A", bound=Aggregate)

ALL_MET = {criterion: True for criterion in QUALIFICATION_CRITERIA}


def settled(aggregate: A) -> A:
    """The aggregate with its pending events taken away: the 'given' part of a test."""
    aggregate.collect_events()
    return aggregate


def new_events(aggregate: Aggregate) -> list[Any]:
    """The events the 'when' part produced: the 'then' part of a test."""
    return list(aggregate.collect_events())


def organisation() -> Organisation:
    org = Organisation.found("Test Co")
    org.join("admin", "Ada", Role.ADMIN, None, "system")
    org.join("vp", "Vic", Role.MANAGER, None, "admin")
    org.join("mgr", "Meg", Role.MANAGER, "vp", "admin")
    org.join("rep1", "Ray", Role.SALES_REP, "mgr", "admin")
    org.join("rep2", "Rita", Role.SALES_REP, "mgr", "admin")
    org.join("other-mgr", "Otto", Role.MANAGER, "vp", "admin")
    org.join("rep3", "Rob", Role.SALES_REP, "other-mgr", "admin")
    org.join("auditor", "Aud", Role.AUDITOR, None, "admin")
    return settled(org)


OPENED_AT = datetime(2026, 1, 2, 9, tzinfo=UTC)
"""When the fixtures' deals were opened, so their closing dates (2026) lie after it."""


def opportunity(org: Organisation, *, stage: int = 1, qualified: bool = False) -> Opportunity:
    with recorded_at(OPENED_AT):
        return _opportunity(org, stage=stage, qualified=qualified)


def _opportunity(org: Organisation, *, stage: int, qualified: bool) -> Opportunity:
    deal = Opportunity.open(
        customer_id="c-1",
        owner_id="rep1",
        title="ERP rollout",
        source="referral",
        amount=Decimal("50000"),
        expected_close=date(2026, 6, 30),
        product="erp",
        region="north",
        actor="rep1",
        org=org,
    )
    if qualified or stage > 1:
        deal.qualify(ALL_MET, "rep1")
    if stage > 1:
        deal.advance_stage(stage, None, "rep1")
    return settled(deal)
