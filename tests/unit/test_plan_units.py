"""Plans scoped to a unit: who drafts and changes them, whom targets may go to, and the
bottom-up proposals of the people a node is for."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.organisation import Organisation
from aggregates.plan import SalesPlan
from events.plan import PlanProposalMade
from tests.unit.domain_fixtures import new_events, organisation, settled

D = Decimal


def team_plan(org: Organisation, drafter: str = "mgr", unit: str | None = None) -> SalesPlan:
    p = SalesPlan.draft(
        name="Team", period="2026", targets={"revenue": D(1000)}, actor=drafter, org=org,
        unit=unit,
    )  # fmt: skip
    p.decompose("total", "employee", {"rep1": {"revenue": D(600)}, "rep2": {"revenue": D(400)}},
                "mgr", org)  # fmt: skip
    return settled(p)


def test_a_managers_plan_is_for_their_unit_and_only_an_admin_plans_for_the_company() -> None:
    org = organisation()
    assert team_plan(org).unit == "mgr"
    assert team_plan(org, drafter="vp", unit="mgr").unit == "mgr"  # a unit below the drafter
    company = SalesPlan.draft(
        name="All", period="2026", targets={"revenue": D(1)}, actor="admin", org=org
    )
    assert company.unit is None
    with pytest.raises(NotAllowedError, match="own unit or one below"):
        SalesPlan.draft(name="X", period="2026", targets={"revenue": D(1)}, actor="other-mgr",
                        org=org, unit="mgr")  # fmt: skip
    with pytest.raises(RuleViolationError, match="not an active manager"):
        SalesPlan.draft(name="X", period="2026", targets={"revenue": D(1)}, actor="admin",
                        org=org, unit="rep1")  # fmt: skip


def test_only_managers_of_the_unit_at_below_or_above_it_change_the_plan() -> None:
    org = organisation()
    p = team_plan(org)
    even = {"total/employee=rep1": {"revenue": D(500)}, "total/employee=rep2": {"revenue": D(500)}}
    with pytest.raises(NotAllowedError, match="mgr's unit"):
        p.revise(even, "top_down", "x", "other-mgr", org)
    p.revise(even, "top_down", "balance", "vp", org)
    assert p.targets["total/employee=rep1"] == {"revenue": D(500)}


def test_targets_go_only_to_people_of_the_nodes_unit_and_to_configured_keys() -> None:
    org = organisation()
    p = SalesPlan.draft(name="T", period="2026", targets={"revenue": D(10)}, actor="mgr", org=org)
    with pytest.raises(RuleViolationError, match="outside this node's unit"):
        p.decompose("total", "employee", {"rep3": {"revenue": D(10)}}, "mgr", org)
    with pytest.raises(RuleViolationError, match="not an active person"):
        p.decompose("total", "employee", {"ghost": {"revenue": D(10)}}, "mgr", org)
    with pytest.raises(RuleViolationError, match="not an active manager"):
        p.decompose("total", "department", {"rep1": {"revenue": D(10)}}, "mgr", org)
    org.configure({"regions": ["north", "south"]}, "our regions", "admin")
    with pytest.raises(RuleViolationError, match="not one of"):
        p.decompose("total", "region", {"atlantis": {"revenue": D(10)}}, "mgr", org)
    p.decompose("total", "region", {"north": {"revenue": D(10)}}, "mgr", org)


def test_the_person_a_node_is_for_proposes_its_targets_without_changing_them() -> None:
    org = organisation()
    p = team_plan(org)
    p.propose("total/employee=rep2", {"revenue": D(300)}, "a key account churned", "rep2", org)
    proposal = new_events(p)[-1]
    assert isinstance(proposal, PlanProposalMade) and proposal.actor == "rep2"
    assert p.proposals == {"total/employee=rep2": {"revenue": D(300)}}
    assert p.targets["total/employee=rep2"] == {"revenue": D(400)}  # until a planner adopts it
    with pytest.raises(NotAllowedError, match="only the person a plan node is for"):
        p.propose("total/employee=rep2", {"revenue": D(1)}, "mine now", "rep1", org)
    with pytest.raises(NotAllowedError, match="only the person a plan node is for"):
        p.propose("total", {"revenue": D(1)}, "everything", "rep1", org)
    with pytest.raises(RuleViolationError, match="reason"):
        p.propose("total/employee=rep1", {"revenue": D(1)}, " ", "rep1", org)
    with pytest.raises(RuleViolationError, match="node's metrics"):
        p.propose("total/employee=rep1", {"volume": D(1)}, "more deals", "rep1", org)
