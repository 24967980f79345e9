"""A person's forecast for a period, rolled up the management chain."""

from __future__ import annotations

from decimal import Decimal
from functools import singledispatchmethod
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.organisation import Organisation, Role
from aggregates.plan import period_level
from events.forecast import ForecastOpened, ForecastRevised, ForecastSubmitted


def forecast_id(person_id: str, period: str) -> UUID:
    """One forecast per person and period, so a sales force submits without contention."""
    return uuid5(NAMESPACE_URL, f"salesledger:forecast:{period}:{person_id}")


class Forecast(Aggregate):
    """What one person believes will close in one period, and every revision of it."""

    def __init__(self) -> None:
        self.person_id = ""
        self.period = ""
        self.lines: list[dict[str, Any]] = []
        self.team: dict[str, Decimal] = {}
        self.own_total = Decimal(0)
        self.team_total = Decimal(0)
        self.submitted_total: Decimal | None = None
        self.adjusted_total: Decimal | None = None
        self.submissions = 0

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

    @property
    def total(self) -> Decimal:
        """The figure passed upward: the latest adjustment, else the submitted total."""
        if self.adjusted_total is not None:
            return self.adjusted_total
        return self.submitted_total if self.submitted_total is not None else Decimal(0)

    def submit(
        self,
        lines: list[dict[str, Any]],
        team: dict[str, Decimal],
        actor: str,
        org: Organisation,
    ) -> None:
        """Submit upward: own confirmed deals plus the direct reports' forecasts."""
        if actor != self.person_id:
            raise NotAllowedError("only the forecast's owner submits it")
        if not org.has_role(actor, Role.SALES_REP, Role.MANAGER):
            raise NotAllowedError("only sales reps and managers submit forecasts")
        ids = [line["opportunity_id"] for line in lines]
        if len(set(ids)) != len(ids):
            raise RuleViolationError("an opportunity may appear only once in a forecast")
        reports = set(org.direct_reports(self.person_id))
        strangers = sorted(set(team) - reports)
        if strangers:
            raise RuleViolationError(f"{strangers} do not report to {self.person_id}")
        own_total = sum((Decimal(line["amount"]) for line in lines), Decimal(0))
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
        """Adjust the total, by the owner or any superior, with a reason."""
        if self.submitted_total is None:
            raise RuleViolationError("a forecast is revised after it is submitted")
        if actor != self.person_id and not org.is_superior(actor, self.person_id):
            raise NotAllowedError("only the owner or a superior revises a forecast")
        if adjusted_total < 0:
            raise RuleViolationError("a forecast may not be negative")
        if not reason.strip():
            raise RuleViolationError("a revision needs a reason")
        if adjusted_total == self.total:
            raise RuleViolationError("the forecast total is unchanged")
        self.trigger_event(
            ForecastRevised,
            adjusted_total=adjusted_total,
            previous_total=self.total,
            reason=reason,
            actor=actor,
        )

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
        self.adjusted_total = None
        self.submissions += 1

    @when.register
    def _(self, event: ForecastRevised) -> None:
        self.adjusted_total = event.adjusted_total
