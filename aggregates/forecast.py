"""A person's forecast for a period, rolled up the management chain (collaborative
forecasts: each level submits its own; a superior's adjustment is kept apart from the
owner's figure and survives the owner's resubmissions)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import singledispatchmethod
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.opportunity import Opportunity, Status
from aggregates.organisation import Organisation, Role
from aggregates.plan import period_bounds, period_level
from events.forecast import ForecastOpened, ForecastRevised, ForecastSubmitted, QuotaSet

CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")
"""Forecast categories of a deal, as in Salesforce's collaborative forecasts."""
CONFIRMED_CATEGORIES = ("closed", "commit")
"""The categories that make the figure submitted upward (the brief's confirmed deals)."""


def forecast_id(person_id: str, period: str) -> UUID:
    """One forecast per person and period, so a sales force submits without contention."""
    return uuid5(NAMESPACE_URL, f"salesledger:forecast:{period}:{person_id}")


def confirmed_total(lines: list[dict[str, Any]]) -> Decimal:
    """The closed and commit lines' amounts: what a forecast passes upward as its own."""
    return sum(
        (Decimal(line["amount"]) for line in lines if line_category(line) in CONFIRMED_CATEGORIES),
        Decimal(0),
    )


def line_category(line: dict[str, Any]) -> str:
    """A line's category; lines recorded before categories existed are commits."""
    return str(line.get("category") or "commit")


def forecast_line(
    opportunity: Opportunity, actor: str, period: str, category: str | None
) -> dict[str, Any]:
    """The line a deal adds to ``actor``'s forecast for ``period``: only the primary
    owner's deals, so revenue is never counted twice; not lost; closing in the period."""
    if opportunity.owner_id != actor:
        raise RuleViolationError(
            f"{opportunity.title!r} is not yours: forecasts count only deals you are primary "
            "owner of, so revenue is never counted twice"
        )
    if opportunity.status == Status.LOST:
        raise RuleViolationError(f"{opportunity.title!r} is lost")
    start, end = period_bounds(period)
    if not start <= (opportunity.closed_on or opportunity.expected_close) <= end:
        raise RuleViolationError(f"{opportunity.title!r} does not close in {period}")
    won = opportunity.status == Status.WON
    line = {
        "opportunity_id": str(opportunity.id),
        "amount": str(opportunity.won_amount if won else opportunity.amount),
        "stage": opportunity.stage,
        "status": opportunity.status.value,
        "category": category or ("closed" if won else "commit"),
    }
    _require_category(line)
    return line


@dataclass(frozen=True)
class Adjustment:
    """One person's adjustment of a forecast, made after its ``after_submission``-th
    submission (a later submission leaves it standing, beside the new figure)."""

    adjuster: str
    amount: Decimal
    reason: str
    after_submission: int


def governing_adjustment(
    adjustments: dict[str, Adjustment], owner: str, chain_above: list[str]
) -> Adjustment | None:
    """The adjustment in force: the most senior adjuster's latest (the owner is the least
    senior, their current superiors the most, former ones in between), so no one below
    can undo an adjustment made above."""
    if not adjustments:
        return None
    ranks = {person: index + 1 for index, person in enumerate(chain_above)}

    def rank(adjuster: str) -> float:
        if adjuster == owner:
            return 0
        return ranks.get(adjuster, 0.5)

    return adjustments[max(adjustments, key=rank)]


class Forecast(Aggregate):
    """What one person believes will close in one period, and every adjustment of it."""

    def __init__(self) -> None:
        self.person_id = ""
        self.period = ""
        self.lines: list[dict[str, Any]] = []
        self.team: dict[str, Decimal] = {}
        self.own_total = Decimal(0)
        self.team_total = Decimal(0)
        self.submitted_total: Decimal | None = None
        self.adjustments: dict[str, Adjustment] = {}
        self.adjustment_count = 0
        self.submissions = 0
        self.quota: Decimal | None = None

    @classmethod
    def open(cls, person_id: str, period: str, actor: str) -> Forecast:
        period_level(period)
        return cls._create(
            ForecastOpened,
            id=forecast_id(person_id, period),
            person_id=person_id,
            period=period,
            actor=actor,
        )

    # Queries.

    def adjustment_in_force(self, org: Organisation) -> Adjustment | None:
        return governing_adjustment(
            self.adjustments, self.person_id, org.chain_above(self.person_id)
        )

    def figure(self, org: Organisation) -> Decimal:
        """The figure passed upward: the adjustment in force, else the submitted total."""
        adjustment = self.adjustment_in_force(org)
        if adjustment is not None:
            return adjustment.amount
        return self.submitted_total if self.submitted_total is not None else Decimal(0)

    # Decisions.

    def submit(
        self,
        lines: list[dict[str, Any]],
        team: dict[str, Decimal],
        actor: str,
        org: Organisation,
    ) -> None:
        """Submit upward: own deals by category plus the direct reports' forecasts."""
        if actor != self.person_id:
            raise NotAllowedError("only the forecast's owner submits it")
        if not org.has_role(actor, Role.SALES_REP, Role.MANAGER):
            raise NotAllowedError("only sales reps and managers submit forecasts")
        ids = [line["opportunity_id"] for line in lines]
        if len(set(ids)) != len(ids):
            raise RuleViolationError("an opportunity may appear only once in a forecast")
        for line in lines:
            _require_category(line)
        reports = set(org.direct_reports(self.person_id))
        strangers = sorted(set(team) - reports)
        if strangers:
            raise RuleViolationError(f"{strangers} do not report to {self.person_id}")
        own_total = confirmed_total(lines)
        team_total = sum(team.values(), Decimal(0))
        self.trigger_event(
            ForecastSubmitted,
            lines=lines,
            team=team,
            own_total=own_total,
            team_total=team_total,
            total=own_total + team_total,
            actor=actor,
        )

    def revise(self, adjusted_total: Decimal, reason: str, actor: str, org: Organisation) -> None:
        """Adjust the figure, by the owner or any superior, with a reason; each adjuster's
        adjustment is kept apart and survives later submissions."""
        if self.submitted_total is None:
            raise RuleViolationError(
                f"{self.person_id} has not submitted a forecast for {self.period}; a forecast "
                "is revised after it is submitted"
            )
        if actor != self.person_id and not org.is_superior(actor, self.person_id):
            raise NotAllowedError("only the owner or a superior revises a forecast")
        if adjusted_total < 0:
            raise RuleViolationError("adjusted_total: a forecast may not be negative")
        if not reason.strip():
            raise RuleViolationError("reason: a revision needs a reason")
        own = self.adjustments.get(actor)
        if own is not None and own.amount == adjusted_total:
            raise RuleViolationError("adjusted_total: your adjustment is unchanged")
        previous = self.figure(org)
        self.trigger_event(
            ForecastRevised,
            adjusted_total=adjusted_total,
            previous_total=previous,
            reason=reason,
            actor=actor,
        )

    def set_quota(self, amount: Decimal, reason: str, actor: str, org: Organisation) -> None:
        """A superior (or an admin) sets the person's quota for the period."""
        if not (org.is_superior(actor, self.person_id) or org.has_role(actor, Role.ADMIN)):
            raise NotAllowedError("only a superior of the person or an admin sets a quota")
        if amount < 0:
            raise RuleViolationError("amount: a quota may not be negative")
        if amount == self.quota:
            raise RuleViolationError("amount: the quota is unchanged")
        self.trigger_event(QuotaSet, amount=amount, reason=reason, actor=actor)

    # Evolution.

    @singledispatchmethod
    def when(self, event: Any) -> None:
        raise NotImplementedError(type(event).__name__)

    @when.register
    def _(self, event: ForecastOpened) -> None:
        self.person_id = event.person_id
        self.period = event.period

    @when.register
    def _(self, event: ForecastSubmitted) -> None:
        self.lines = list(event.lines)
        self.team = dict(event.team)
        self.own_total = event.own_total
        self.team_total = event.team_total
        self.submitted_total = event.total
        self.submissions += 1

    @when.register
    def _(self, event: ForecastRevised) -> None:
        self.adjustments[event.actor] = Adjustment(
            event.actor, event.adjusted_total, event.reason, self.submissions
        )
        self.adjustment_count += 1

    @when.register
    def _(self, event: QuotaSet) -> None:
        self.quota = event.amount


def _require_category(line: dict[str, Any]) -> None:
    category = line_category(line)
    if category not in CATEGORIES:
        raise RuleViolationError(f"category: must be one of {CATEGORIES}, not {category!r}")
    won = line.get("status") == "won"
    if category == "closed" and not won:
        raise RuleViolationError("category: only a won deal is closed")
    if won and category not in ("closed", "omitted"):
        raise RuleViolationError("category: a won deal is closed (or omitted)")
