"""Commands of forecasts: submission of confirmed deals, quotas, revisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from eventsourcing.domain import Aggregate

from aggregates.errors import NotFoundError, RuleViolationError
from aggregates.forecast import Forecast, forecast_id, forecast_line
from aggregates.opportunity import Opportunity
from aggregates.visibility import require_visible_people
from commands.application import CommandResult, LedgerApplication


class ForecastCommands(LedgerApplication):
    """Forecasts' commands."""

    def forecast(self, person_id: str, period: str) -> Forecast:
        return self.load(Forecast, forecast_id(person_id, period))

    def submit_forecast(
        self,
        period: str,
        opportunity_ids: Sequence[str],
        *,
        categories: Mapping[str, str] | None = None,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        """Submit the actor's forecast: the deals they are primary owner of, closing in
        the period, each in a category (default: closed if won, else commit), plus the
        figures in force of their direct reports' forecasts."""
        chosen = dict(categories or {})
        unknown = set(chosen) - set(opportunity_ids)
        if unknown:
            raise RuleViolationError("categories: name only deals of opportunity_ids")

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            lines = [
                forecast_line(
                    self._read_visible(Opportunity, deal, "a forecast deal", actor, org),
                    actor,
                    period,
                    chosen.get(deal),
                )
                for deal in opportunity_ids
            ]
            team: dict[str, Decimal] = {}
            for report in org.direct_reports(actor):
                try:
                    team[report] = self.forecast(report, period).figure(org)
                except NotFoundError:
                    continue
            forecast = self._forecast_or_new(actor, period, actor)
            forecast.submit(lines, team, actor, org)
            return forecast, ()

        return self._run(actor, command_id, decide)

    def _forecast_or_new(self, person_id: str, period: str, actor: str) -> Forecast:
        try:
            return self.forecast(person_id, period)
        except NotFoundError:
            return Forecast.open(person_id, period, actor)

    def set_quota(
        self,
        person_id: str,
        period: str,
        amount: Decimal,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        """Set a person's quota for a period (a superior of theirs or an admin)."""

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            require_visible_people(actor, {person_id}, org)
            org.person(person_id)
            forecast = self._forecast_or_new(person_id, period, actor)
            forecast.set_quota(amount, reason, actor, org)
            return forecast, ()

        return self._run(actor, command_id, decide)

    def revise_forecast(
        self,
        person_id: str,
        period: str,
        adjusted_total: Decimal,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            require_visible_people(actor, {person_id}, org)
            try:
                forecast = self.forecast(person_id, period)
            except NotFoundError:
                raise RuleViolationError(
                    f"{person_id} has not submitted a forecast for {period}; a forecast is "
                    "revised after it is submitted"
                ) from None
            forecast.revise(adjusted_total, reason, actor, org)
            return forecast, ()

        return self._run(actor, command_id, decide)
