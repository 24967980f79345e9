"""Plan decomposition (children sum to parents, over sub-periods) and forecast roll-up."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.forecast import Forecast
from aggregates.plan import SalesPlan, is_sub_period, period_bounds
from events.forecast import ForecastRevised, ForecastSubmitted
from events.plan import PlanApproved, PlanRevised, TargetsDecomposed
from tests.unit.domain_fixtures import new_events, organisation, settled

D = Decimal


def plan() -> SalesPlan:
    org = organisation()
    p = SalesPlan.draft(
        name="FY", period="2026", targets={"revenue": D(1200), "volume": D(12)}, actor="vp", org=org
    )
    p.decompose(
        "total",
        "period",
        {f"2026-Q{q}": {"revenue": D(300), "volume": D(3)} for q in range(1, 5)},
        "vp",
        org,
    )
    return settled(p)


@pytest.mark.parametrize(
    ("child", "parent", "expected"),
    [
        ("2026-Q1", "2026", True),
        ("2026-03", "2026-Q1", True),
        ("2026-04", "2026-Q1", False),
        ("2026-W10", "2026-03", True),
        ("2026-03-04", "2026-W10", True),
        ("2026-03", "2026", False),
        ("2027-Q1", "2026", False),
    ],
)
def test_sub_periods_go_one_level_finer(child: str, parent: str, expected: bool) -> None:
    assert is_sub_period(child, parent) is expected


def test_period_bounds() -> None:
    assert [d.isoformat() for d in period_bounds("2026-Q4")] == ["2026-10-01", "2026-12-31"]
    with pytest.raises(RuleViolationError):
        period_bounds("2026-13")


def test_decomposition_must_sum_to_the_parent() -> None:
    p, org = plan(), organisation()
    with pytest.raises(RuleViolationError, match="sum to"):
        p.decompose(
            "total",
            "region",
            {
                "north": {"revenue": D(700), "volume": D(6)},
                "south": {"revenue": D(400), "volume": D(6)},
            },
            "vp",
            org,
        )
    p.decompose(
        "total",
        "region",
        {
            "north": {"revenue": D(800), "volume": D(6)},
            "south": {"revenue": D(400), "volume": D(6)},
        },
        "vp",
        org,
    )
    [event] = new_events(p)
    assert isinstance(event, TargetsDecomposed)
    assert p.violations(p.targets) == []


def test_time_decomposition_needs_sub_periods() -> None:
    p, org = plan(), organisation()
    with pytest.raises(RuleViolationError, match="sub-period"):
        p.decompose(
            "total/period=2026-Q1",
            "period",
            {"2026-04": {"revenue": D(300), "volume": D(3)}},
            "vp",
            org,
        )
    months = {f"2026-0{m}": {"revenue": D(100), "volume": D(1)} for m in (1, 2, 3)}
    p.decompose("total/period=2026-Q1", "period", months, "vp", org)
    assert p.targets["total/period=2026-Q1/period=2026-02"] == {"revenue": D(100), "volume": D(1)}


def test_a_revision_that_breaks_the_sums_is_refused_and_a_consistent_one_is_recorded() -> None:
    p, org = plan(), organisation()
    with pytest.raises(RuleViolationError, match="breaks"):
        p.revise({"total": {"revenue": D(1300)}}, "top_down", "stretch", "vp", org)
    with pytest.raises(RuleViolationError, match="reason"):
        p.revise(
            {"total": {"revenue": D(1300)}, "total/period=2026-Q4": {"revenue": D(400)}},
            "top_down",
            "",
            "vp",
            org,
        )
    p.revise(
        {"total": {"revenue": D(1300)}, "total/period=2026-Q4": {"revenue": D(400)}},
        "top_down",
        "stretch",
        "vp",
        org,
    )
    [event] = new_events(p)
    assert isinstance(event, PlanRevised) and (event.direction, event.reason) == (
        "top_down",
        "stretch",
    )


def test_only_managers_plan_and_approve() -> None:
    p, org = plan(), organisation()
    with pytest.raises(NotAllowedError):
        p.approve("ok", "rep1", org)
    p.approve("ok", "vp", org)
    assert isinstance(new_events(p)[-1], PlanApproved) and p.status == "approved"
    p.revise(
        {"total/period=2026-Q1": {"revenue": D(200)}, "total/period=2026-Q2": {"revenue": D(400)}},
        "bottom_up",
        "teams' view",
        "mgr",
        org,
    )
    assert p.status == "revised"


def test_forecasts_roll_up_and_superiors_revise_with_a_reason() -> None:
    org = organisation()
    rep = Forecast.open("rep1", "2026-Q2", "rep1")
    rep.submit(
        [{"opportunity_id": "o1", "amount": "100"}, {"opportunity_id": "o2", "amount": "50"}],
        {},
        "rep1",
        org,
    )
    mgr = Forecast.open("mgr", "2026-Q2", "mgr")
    mgr.submit([], {"rep1": rep.figure(org)}, "mgr", org)
    assert (rep.figure(org), mgr.figure(org)) == (D(150), D(150))
    with pytest.raises(NotAllowedError):
        mgr.revise(D(120), "slippage", "rep1", org)
    mgr.revise(D(120), "slippage", "vp", org)
    events = new_events(mgr)
    assert isinstance(events[1], ForecastSubmitted) and isinstance(events[2], ForecastRevised)
    assert (events[2].previous_total, events[2].adjusted_total, mgr.figure(org)) == (
        D(150),
        D(120),
        D(120),
    )


def test_forecast_rules() -> None:
    org = organisation()
    f = Forecast.open("rep1", "2026-Q2", "rep1")
    with pytest.raises(RuleViolationError, match="after it is submitted"):
        f.revise(D(1), "x", "rep1", org)
    with pytest.raises(NotAllowedError):
        f.submit([], {}, "mgr", org)
    with pytest.raises(RuleViolationError, match="once"):
        f.submit([{"opportunity_id": "o1", "amount": "1"}] * 2, {}, "rep1", org)
    mgr = Forecast.open("mgr", "2026-Q2", "mgr")
    with pytest.raises(RuleViolationError, match="report"):
        mgr.submit([], {"rep3": D(10)}, "mgr", org)
