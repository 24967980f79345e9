"""Collaborative forecasts: each level's own submission, adjustments kept apart from the
owner's figure, categories, quotas, accuracy for every case; and a state machine showing
that no interleaving of submissions and revisions loses an adjustment or counts a deal
twice."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.forecast import CATEGORIES, CONFIRMED_CATEGORIES, Forecast
from aggregates.forecast_rollup import PersonFigures, forecast_accuracy, roll_up
from aggregates.organisation import Organisation
from tests.unit.domain_fixtures import organisation

SUBMITTERS = ("rep1", "rep2", "mgr", "vp")
DEALS = ("d1", "d2", "d3", "d4", "d5")


def line(deal: str, amount: int, category: str = "commit", status: str = "open") -> dict[str, Any]:
    return {"opportunity_id": deal, "amount": str(amount), "category": category, "status": status}


def figures_of(forecasts: dict[str, Forecast], order: dict[str, int]) -> dict[str, PersonFigures]:
    return {
        person: PersonFigures(
            person,
            {
                entry["opportunity_id"]: (entry["category"], D(entry["amount"]))
                for entry in forecast.lines
            },
            ("", order[person]) if person in order else None,
            forecast.submissions,
            dict(forecast.adjustments),
            forecast.quota,
        )
        for person, forecast in forecasts.items()
    }


def managers_of(org: Organisation) -> dict[str, str | None]:
    return {p.person_id: p.manager_id for p in org.people.values()}


def test_a_resubmission_below_never_erases_an_adjustment_above() -> None:
    org = organisation()
    rep = Forecast.open("rep1", "2026-Q2", "rep1")
    rep.submit([line("o1", 100_000)], {}, "rep1", org)
    rep.revise(D(120_000), "the customer signs early", "mgr", org)
    rep.submit([line("o1", 999_999)], {}, "rep1", org)
    rep.revise(D(999_999), "I insist", "rep1", org)

    in_force = rep.adjustment_in_force(org)
    assert in_force is not None and (in_force.adjuster, in_force.amount) == ("mgr", D(120_000))
    assert rep.figure(org) == D(120_000)
    assert in_force.after_submission < rep.submissions  # the new figure stands beside it
    assert rep.submitted_total == D(999_999)
    rolled = roll_up(figures_of({"rep1": rep}, {"rep1": 1}), managers_of(org))
    assert (rolled["mgr"].unadjusted, rolled["mgr"].adjusted) == (D(999_999), D(120_000))


def test_categories_make_the_figure_and_closed_is_for_won_deals() -> None:
    org = organisation()
    rep = Forecast.open("rep1", "2026-Q2", "rep1")
    rep.submit(
        [
            line("o1", 10, "closed", "won"),
            line("o2", 20, "commit"),
            line("o3", 40, "best_case"),
            line("o4", 80, "pipeline"),
            line("o5", 160, "omitted"),
        ],
        {},
        "rep1",
        org,
    )
    assert rep.figure(org) == D(30)
    rolled = roll_up(figures_of({"rep1": rep}, {"rep1": 1}), managers_of(org))["vp"]
    assert rolled.by_category == {
        "pipeline": D(80),
        "best_case": D(40),
        "commit": D(20),
        "closed": D(10),
        "omitted": D(160),
    }
    for bad, message in (
        (line("o1", 1, "closed"), "only a won deal"),
        (line("o1", 1, "commit", "won"), "won deal is closed"),
        (line("o1", 1, "maybe"), "category: must be one of"),
    ):
        with pytest.raises(RuleViolationError, match=message):
            rep.submit([bad], {}, "rep1", org)


def test_quota_is_set_by_a_superior_per_person_and_period() -> None:
    org = organisation()
    forecast = Forecast.open("rep1", "2026-Q2", "mgr")
    with pytest.raises(NotAllowedError, match="superior"):
        forecast.set_quota(D(500), "stretch", "rep1", org)
    with pytest.raises(NotAllowedError):
        forecast.set_quota(D(500), "stretch", "rep2", org)
    forecast.set_quota(D(500), "stretch", "vp", org)
    assert forecast.quota == D(500)
    with pytest.raises(RuleViolationError, match="amount"):
        forecast.set_quota(D(-1), "less", "mgr", org)


@pytest.mark.parametrize(
    ("forecast", "actual", "accuracy"),
    [
        (98_000, 0, "0"),
        (0, 0, "1"),
        (0, 50, "0"),
        (100, 100, "1"),
        (50, 100, "0.5"),
        (150, 100, "0.6667"),
    ],
)
def test_accuracy_is_defined_for_every_case(forecast: int, actual: int, accuracy: str) -> None:
    assert forecast_accuracy(D(forecast), D(actual)) == D(accuracy)


class ForecastInterleavings(RuleBasedStateMachine):
    """Submissions (any deals, any categories: deals may move between owners between
    submissions) and revisions by the owner or any superior, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.org = organisation()
        self.forecasts: dict[str, Forecast] = {}
        self.order: dict[str, int] = {}
        self.clock = 0
        self.made: dict[str, dict[str, D]] = {}

    @rule(
        person=st.sampled_from(SUBMITTERS),
        deals=st.dictionaries(
            st.sampled_from(DEALS),
            st.tuples(st.integers(0, 1000), st.sampled_from(("pipeline", "best_case", "commit"))),
            max_size=4,
        ),
    )
    def submit(self, person: str, deals: dict[str, tuple[int, str]]) -> None:
        forecast = self.forecasts.setdefault(person, Forecast.open(person, "2026-Q2", person))
        lines = [line(deal, amount, category) for deal, (amount, category) in deals.items()]
        forecast.submit(lines, {}, person, self.org)
        self.clock += 1
        self.order[person] = self.clock

    @rule(
        person=st.sampled_from(SUBMITTERS),
        adjuster=st.sampled_from(("rep1", "rep2", "mgr", "vp")),
        amount=st.integers(0, 5000),
    )
    def revise(self, person: str, adjuster: str, amount: int) -> None:
        forecast = self.forecasts.get(person)
        allowed = adjuster == person or self.org.is_superior(adjuster, person)
        if forecast is None or not allowed:
            return
        if self.made.get(person, {}).get(adjuster) == D(amount):
            return
        forecast.revise(D(amount), "judgement", adjuster, self.org)
        self.made.setdefault(person, {})[adjuster] = D(amount)

    @invariant()
    def no_adjustment_is_lost(self) -> None:
        for person, forecast in self.forecasts.items():
            kept = {a: adj.amount for a, adj in forecast.adjustments.items()}
            assert kept == self.made.get(person, {})
            if kept:
                senior = max(kept, key=lambda a: [person, *self.org.chain_above(person)].index(a))
                assert forecast.figure(self.org) == kept[senior]

    @invariant()
    def no_deal_is_counted_twice(self) -> None:
        rolled = roll_up(figures_of(self.forecasts, self.order), managers_of(self.org))
        latest: dict[str, tuple[int, str, D]] = {}
        for person, forecast in self.forecasts.items():
            for entry in forecast.lines:
                deal = entry["opportunity_id"]
                if deal not in latest or self.order[person] > latest[deal][0]:
                    latest[deal] = (self.order[person], entry["category"], D(entry["amount"]))
        expected = sum(
            (amount for _, category, amount in latest.values() if category in CONFIRMED_CATEGORIES),
            D(0),
        )
        assert rolled["vp"].unadjusted == expected
        assert rolled["vp"].counted_deals == frozenset(latest)
        assert sum(rolled["vp"].by_category.values(), D(0)) == sum(
            (amount for _, _, amount in latest.values()), D(0)
        )
        assert set(rolled["vp"].by_category) == set(CATEGORIES)


TestForecastInterleavings = ForecastInterleavings.TestCase
TestForecastInterleavings.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
