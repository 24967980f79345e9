"""Forecast-error forensics: what each person forecast for a period at a given date,
against what happened, with the error split deal by deal.

For a person, the forecast is their forecast's total as it stood at the date (the latest
submission, or the adjustment after it); the deals behind it are the lines of their own
forecast and of every forecast in their subtree, as they stood then; the actual is the
won amount of the deals closed in the period that were on those lines or are owned by
the subtree. Then, exactly,

    actual − forecast = Σ per deal (won amount in the period − forecast amount)
                        + unforecast wins − (forecast total − Σ forecast lines)

and each deal's part is one of: ``amount_change`` (won in the period for another amount),
``slip`` (not closed in the period: closed later, or still open at its stage or further),
``stage_regression`` (still open, at a lower stage than forecast), ``loss``,
``unforecast`` (won in the period, on no line); the last term is ``adjustment`` (managers'
revisions and roll-up differences).

Pure: fed by the forecast and deal events and the subtrees; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from projections.base import RecordedEvent, as_decimal, iso_timestamp
from projections.funnel import evolve_deal

CAUSES = ("amount_change", "slip", "stage_regression", "loss", "unforecast", "adjustment")


class DealError(BaseModel):
    """One deal's part of a forecast's error."""

    opportunity_id: str
    cause: str = Field(examples=["slip"])
    forecast: Decimal
    actual: Decimal
    error: Decimal = Field(description="actual − forecast")


class PersonForecastError(BaseModel):
    """One person's forecast for the period at the date, against what happened."""

    person_id: str
    forecast: Decimal
    actual: Decimal
    error: Decimal = Field(description="actual − forecast")
    by_cause: dict[str, Decimal]
    accuracy: Decimal | None = Field(description="1 − |error| ÷ actual (None without actual)")
    deals: list[DealError]


class ForecastErrors(BaseModel):
    """Every person's forecast error for one period as forecast at ``as_of``."""

    period: str
    as_of: datetime
    people: list[PersonForecastError]


def forecasts_at(events: Iterable[RecordedEvent], period: str, moment: datetime) -> dict[str, Any]:
    """person → {"total", "lines"} of their forecasts for ``period`` at ``moment``."""
    cutoff = iso_timestamp(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    found: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    for recorded in events:
        if recorded.recorded_at > cutoff:
            continue
        event, kind = recorded.event, recorded.type_name
        if kind == "ForecastOpened":
            if event.period == period:
                owners[recorded.aggregate_id] = event.person_id
            continue
        person = owners.get(recorded.aggregate_id)
        if person is None:
            continue
        if kind == "ForecastSubmitted":
            found[person] = {"total": as_decimal(event.total), "lines": list(event.lines)}
        elif kind == "ForecastRevised" and person in found:
            found[person]["total"] = as_decimal(event.adjusted_total)
    return found


def forecast_errors(
    forecast_events: Iterable[RecordedEvent],
    deal_events: Iterable[RecordedEvent],
    period: str,
    bounds: tuple[date, date],
    as_of: datetime,
    subtrees: Mapping[str, set[str]],
) -> ForecastErrors:
    """The error of every person with a forecast for ``period`` at ``as_of``."""
    forecasts = forecasts_at(forecast_events, period, as_of)
    deals: dict[str, dict[str, Any]] = {}
    for recorded in deal_events:
        row, _ = evolve_deal(deals.get(recorded.aggregate_id), recorded)
        if row is not None:
            deals[recorded.aggregate_id] = row
    low, high = bounds[0].isoformat(), bounds[1].isoformat()
    won_in_period = {
        k: r for k, r in deals.items() if r["status"] == "won" and low <= r["closed_on"] <= high
    }
    people = [
        _person(person, forecasts, deals, won_in_period, subtrees.get(person, {person}))
        for person in sorted(forecasts)
    ]
    return ForecastErrors(period=period, as_of=as_of, people=people)


def _person(
    person: str,
    forecasts: dict[str, Any],
    deals: dict[str, dict[str, Any]],
    won_in_period: dict[str, dict[str, Any]],
    subtree: set[str],
) -> PersonForecastError:
    lines: dict[str, dict[str, Any]] = {}
    for member in sorted(subtree & forecasts.keys()):
        for line in forecasts[member]["lines"]:
            lines.setdefault(str(line["opportunity_id"]), line)
    parts = [
        _line_error(deal_id, line, deals.get(deal_id), won_in_period)
        for deal_id, line in lines.items()
    ]
    for deal_id, row in sorted(won_in_period.items()):
        if deal_id not in lines and row["owner_id"] in subtree:
            won = as_decimal(row["won_amount"])
            parts.append(
                DealError(
                    opportunity_id=deal_id,
                    cause="unforecast",
                    forecast=Decimal(0),
                    actual=won,
                    error=won,
                )
            )
    total = forecasts[person]["total"]
    lines_total = sum((p.forecast for p in parts), Decimal(0))
    actual = sum((p.actual for p in parts), Decimal(0))
    by_cause = dict.fromkeys(CAUSES, Decimal(0))
    for part in parts:
        by_cause[part.cause] += part.error
    by_cause["adjustment"] = lines_total - total
    error = actual - total
    accuracy = (1 - abs(error) / actual).quantize(Decimal("0.0001")) if actual else None
    return PersonForecastError(
        person_id=person, forecast=total, actual=actual, error=error, by_cause=by_cause,
        accuracy=accuracy, deals=sorted(parts, key=lambda p: (p.cause, p.opportunity_id)),
    )  # fmt: skip


def _line_error(
    deal_id: str,
    line: dict[str, Any],
    row: dict[str, Any] | None,
    won_in_period: dict[str, dict[str, Any]],
) -> DealError:
    forecast = as_decimal(Decimal(str(line["amount"])))
    actual = Decimal(0)
    if deal_id in won_in_period:
        actual, cause = as_decimal(won_in_period[deal_id]["won_amount"]), "amount_change"
    elif row is not None and row["status"] == "lost":
        cause = "loss"
    elif row is not None and row["status"] == "open" and int(row["stage"]) < int(line["stage"]):
        cause = "stage_regression"
    else:
        cause = "slip"
    return DealError(
        opportunity_id=deal_id, cause=cause, forecast=forecast, actual=actual,
        error=actual - forecast,
    )  # fmt: skip


def accuracy_over_periods(reports: Iterable[ForecastErrors]) -> dict[str, dict[str, Any]]:
    """person → {period: accuracy} and the mean absolute error over the periods."""
    found: dict[str, dict[str, Any]] = {}
    for report in reports:
        for person in report.people:
            entry = found.setdefault(person.person_id, {"periods": {}, "absolute_errors": []})
            entry["periods"][report.period] = person.accuracy
            entry["absolute_errors"].append(abs(person.error))
    for entry in found.values():
        errors = entry.pop("absolute_errors")
        entry["mean_absolute_error"] = sum(errors, Decimal(0)) / len(errors)
    return found
