"""The forecast report: each person's forecast, rolled up the hierarchy, against actuals
as known at any moment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.forecast import CATEGORIES, Adjustment
from aggregates.forecast_rollup import (
    PersonFigures,
    RolledUp,
    chain_of,
    forecast_accuracy,
    roll_up,
)
from aggregates.plan import period_bounds, period_level
from projections.base import (
    as_decimal,
    iso_timestamp,
)
from projections.forecasts.projection import (
    LINE_COLUMNS,
    QUOTA_COLUMNS,
    REVISION_COLUMNS,
    SUBMISSION_COLUMNS,
)
from projections.store import ReadStore, Row, Transaction


class ForecastRevisionView(BaseModel):
    """An adjustment of a forecast's figure, by its owner or a superior."""

    actor: str = Field(examples=["carol"])
    recorded_at: str
    previous_total: Decimal = Field(examples=["1200000"])
    adjusted_total: Decimal = Field(examples=["1000000"])
    reason: str = Field(examples=["two deals look late"])
    after_submission: int = Field(description="made after the owner's n-th submission")


class PersonForecast(BaseModel):
    """One person's forecast for the period, their roll-up, quota and actual result."""

    person_id: str = Field(examples=["alice"])
    manager_id: str | None = Field(examples=["carol"])
    submitted: bool
    submitted_at: str | None
    submissions: int = Field(description="how many times the owner submitted")
    own_total: Decimal = Field(description="own closed and commit deals, counted once")
    submitted_total: Decimal = Field(description="own plus team, as last submitted")
    adjusted_total: Decimal | None = Field(
        description="the adjustment in force (the most senior adjuster's latest), if any"
    )
    adjusted_by: str | None = Field(description="who made the adjustment in force")
    adjustment_predates_submission: bool = Field(
        description="the owner submitted again after the adjustment in force: the new "
        "unadjusted figure is submitted_total, the adjustment still stands"
    )
    revisions: list[ForecastRevisionView]
    rollup_unadjusted: Decimal = Field(
        description="closed and commit deals of this person and everyone below, each once"
    )
    rollup_adjusted: Decimal = Field(
        description="the adjustment in force at this level, else own plus each report's "
        "adjusted roll-up"
    )
    by_category: dict[str, Decimal] = Field(
        description="deal amounts of this person and below by forecast category"
    )
    quota: Decimal | None = Field(description="quota of this person and below, if any set")
    actual: Decimal = Field(description="won amount closed in the period, this person and below")
    accuracy: Decimal = Field(
        description="1 − |adjusted roll-up − actual| ÷ max(adjusted roll-up, actual); "
        "1 when both are 0"
    )


class ForecastReport(BaseModel):
    """A period's forecasts at every level of the hierarchy, as known at ``as_of``."""

    period: str = Field(examples=["2026-Q2"])
    as_of: datetime | None
    people: list[PersonForecast]
    top_level_unadjusted: Decimal
    top_level_adjusted: Decimal
    top_level_actual: Decimal
    made_of: list[str] = Field(
        default_factory=list,
        description="the sub-periods whose forecasts make this one (a year's quarters, a "
        "quarter's months) when nothing was submitted for the period itself",
    )


def _select(tx: Transaction, table: str, columns: Sequence[str], period: str, cutoff: str) -> Any:
    return tx.execute(
        f"SELECT {', '.join(columns)} FROM {table} "
        "WHERE period = %s AND recorded_at <= %s ORDER BY forecast_id, version",
        [period, cutoff],
    )


def _figures(
    submissions: Sequence[Row],
    lines: Sequence[Row],
    revisions: Sequence[Row],
    quotas: Sequence[Row],
) -> tuple[dict[str, PersonFigures], dict[str, list[ForecastRevisionView]], dict[str, Row]]:
    """The people's figures from the report's rows (rows in version order)."""
    figures: dict[str, PersonFigures] = {}
    latest: dict[str, Row] = {}
    events = sorted(
        [(r["person_id"], r["version"], "s", r) for r in submissions]
        + [(r["person_id"], r["version"], "r", r) for r in revisions]
        + [(r["person_id"], r["version"], "q", r) for r in quotas],
        key=lambda item: (item[0], item[1]),
    )
    history: dict[str, list[ForecastRevisionView]] = {}
    for person, _, kind, row in events:
        mine = figures.setdefault(person, PersonFigures(person))
        if kind == "s":
            mine.submissions += 1
            mine.submitted_at = (row["recorded_at"], 0)
            mine.lines = {}
            latest[person] = row
        elif kind == "r":
            amount = as_decimal(row["adjusted_total"])
            mine.adjustments[row["actor"]] = Adjustment(
                row["actor"], amount, row["reason"], mine.submissions
            )
            history.setdefault(person, []).append(
                ForecastRevisionView(
                    actor=row["actor"],
                    recorded_at=row["recorded_at"],
                    previous_total=as_decimal(row["previous_total"]),
                    adjusted_total=amount,
                    reason=row["reason"],
                    after_submission=mine.submissions,
                )
            )
        else:
            mine.quota = as_decimal(row["amount"])
    for line in lines:
        submitted = latest.get(line["person_id"])
        if submitted is None or line["version"] != submitted["version"]:
            continue
        mine = figures[line["person_id"]]
        mine.submitted_at = (line["recorded_at"], int(line["position"]))
        mine.lines[line["opportunity_id"]] = (line["category"], as_decimal(line["amount"]))
    return figures, history, latest


def _actuals(tx: Transaction, period: str, cutoff: str) -> dict[str, Decimal]:
    start, end = period_bounds(period)
    rows = tx.execute(
        "SELECT owner_id, SUM(amount) AS amount FROM forecast_actuals "
        "WHERE closed_on >= %s AND closed_on <= %s AND recorded_at <= %s GROUP BY owner_id",
        [start.isoformat(), end.isoformat(), cutoff],
    )
    return {row["owner_id"]: as_decimal(row["amount"]) for row in rows}


def query_forecast_report(
    database: ReadStore,
    period: str,
    managers: Mapping[str, str | None],
    as_of: datetime | None = None,
    people_in_view: set[str] | None = None,
) -> ForecastReport:
    """Forecasts for ``period`` rolled up along ``managers`` (person → manager).

    With ``as_of``, only what was recorded by then counts — submissions, adjustments,
    quotas and won deals alike: what the organisation believed and had sold then. A year
    or quarter nobody forecast as such is the sum of its quarters or months. With
    ``people_in_view``, only those people's lines are listed (roll-ups stay whole).
    """
    cutoff = iso_timestamp(as_of) if as_of is not None else "9999"
    with database.transaction() as tx:
        submissions = _select(tx, "forecast_submissions", SUBMISSION_COLUMNS, period, cutoff)
        lines = _select(tx, "forecast_lines", LINE_COLUMNS, period, cutoff)
        revisions = _select(tx, "forecast_revisions", REVISION_COLUMNS, period, cutoff)
        quotas = _select(tx, "forecast_quotas", QUOTA_COLUMNS, period, cutoff)
        actual_own = _actuals(tx, period, cutoff)
    children = sub_periods(period)
    if not submissions and children:
        parts = [query_forecast_report(database, c, managers, as_of) for c in children]
        return _sum_of(period, as_of, parts, actual_own, managers, people_in_view)
    figures, history, latest = _figures(submissions, lines, revisions, quotas)
    rolled = roll_up(figures, managers)
    actual = _actual_below(actual_own, managers, rolled)
    quota = _quota_below({p: f.quota for p, f in figures.items()}, managers, rolled)
    people = []
    for person in sorted(rolled):
        if people_in_view is not None and person not in people_in_view:
            continue
        people.append(
            _person_line(
                person,
                managers,
                rolled[person],
                figures.get(person),
                history,
                latest.get(person),
                actual[person],
                quota[person],
            )
        )
    return _report(period, as_of, people, rolled, actual, managers, [])


def _person_line(
    person: str,
    managers: Mapping[str, str | None],
    up: RolledUp,
    mine: PersonFigures | None,
    history: Mapping[str, list[ForecastRevisionView]],
    submitted: Row | None,
    actual: Decimal,
    quota: Decimal | None,
) -> PersonForecast:
    adjustment = up.adjustment
    submissions = mine.submissions if mine is not None else 0
    return PersonForecast(
        person_id=person,
        manager_id=managers.get(person),
        submitted=submitted is not None,
        submitted_at=submitted["recorded_at"] if submitted else None,
        submissions=submissions,
        own_total=up.own,
        submitted_total=as_decimal(submitted["total"]) if submitted else Decimal(0),
        adjusted_total=adjustment.amount if adjustment else None,
        adjusted_by=adjustment.adjuster if adjustment else None,
        adjustment_predates_submission=bool(
            adjustment and adjustment.after_submission < submissions
        ),
        revisions=history.get(person, []),
        rollup_unadjusted=up.unadjusted,
        rollup_adjusted=up.adjusted,
        by_category=up.by_category,
        quota=quota,
        actual=actual,
        accuracy=forecast_accuracy(up.adjusted, actual),
    )


def _below(
    own: Mapping[str, Decimal | None], managers: Mapping[str, str | None], people: Sequence[str]
) -> dict[str, Decimal | None]:
    """Each person's value plus everyone's below them (None where nobody has one)."""
    totals: dict[str, Decimal | None] = {p: own.get(p) for p in people}
    for person in set(own) | set(people):
        value = own.get(person)
        if value is None:
            continue
        for superior in chain_of(person, managers):
            current = totals.get(superior)
            totals[superior] = value if current is None else current + value
    return totals


def _actual_below(
    actual_own: Mapping[str, Decimal], managers: Mapping[str, str | None], people: Iterable[str]
) -> dict[str, Decimal]:
    everyone = sorted(set(people) | set(actual_own))
    totals = _below(actual_own, managers, everyone)
    return {p: totals.get(p) or Decimal(0) for p in everyone}


def _quota_below(
    quotas: Mapping[str, Decimal | None],
    managers: Mapping[str, str | None],
    rolled: Mapping[str, RolledUp],
) -> dict[str, Decimal | None]:
    """A person's own quota if set, else the sum of their reports' (None if none)."""
    result: dict[str, Decimal | None] = {}
    reports: dict[str, list[str]] = {}
    for person in rolled:
        manager = managers.get(person)
        if manager is not None:
            reports.setdefault(manager, []).append(person)

    def quota_of(person: str, seen: frozenset[str]) -> Decimal | None:
        if person in result:
            return result[person]
        own = quotas.get(person)
        below = [quota_of(r, seen | {person}) for r in reports.get(person, []) if r not in seen]
        known = [q for q in below if q is not None]
        result[person] = own if own is not None else (sum(known, Decimal(0)) if known else None)
        return result[person]

    for person in rolled:
        quota_of(person, frozenset())
    return result


def _report(
    period: str,
    as_of: datetime | None,
    people: list[PersonForecast],
    rolled: Mapping[str, RolledUp],
    actual: Mapping[str, Decimal],
    managers: Mapping[str, str | None],
    made_of: list[str],
) -> ForecastReport:
    tops = [p for p in rolled if managers.get(p) is None or managers.get(p) not in rolled]
    return ForecastReport(
        period=period,
        as_of=as_of,
        people=people,
        top_level_unadjusted=sum((rolled[t].unadjusted for t in tops), Decimal(0)),
        top_level_adjusted=sum((rolled[t].adjusted for t in tops), Decimal(0)),
        top_level_actual=sum((actual.get(t, Decimal(0)) for t in tops), Decimal(0)),
        made_of=made_of,
    )


def sub_periods(period: str) -> list[str]:
    """The periods a year (its quarters) or a quarter (its months) is made of."""
    level = period_level(period)
    if level == "year":
        return [f"{period}-Q{q}" for q in range(1, 5)]
    if level == "quarter":
        first = 3 * int(period[-1]) - 2
        return [f"{period[:4]}-{month:02d}" for month in range(first, first + 3)]
    return []


def _sum_of(
    period: str,
    as_of: datetime | None,
    parts: Sequence[ForecastReport],
    actual_own: Mapping[str, Decimal],
    managers: Mapping[str, str | None],
    people_in_view: set[str] | None,
) -> ForecastReport:
    """A period's report as the sum of its sub-periods' reports."""
    rows: dict[str, list[PersonForecast]] = {}
    for part in parts:
        for line in part.people:
            rows.setdefault(line.person_id, []).append(line)
    everyone = sorted(set(rows) | set(managers) | set(actual_own))
    actual = _actual_below(actual_own, managers, everyone)
    people = []
    for person in everyone:
        if people_in_view is not None and person not in people_in_view:
            continue
        parts_of = rows.get(person, [])
        adjusted = sum((p.rollup_adjusted for p in parts_of), Decimal(0))
        quotas = [p.quota for p in parts_of if p.quota is not None]
        people.append(
            PersonForecast(
                person_id=person,
                manager_id=managers.get(person),
                submitted=any(p.submitted for p in parts_of),
                submitted_at=max((p.submitted_at or "" for p in parts_of), default="") or None,
                submissions=sum(p.submissions for p in parts_of),
                own_total=sum((p.own_total for p in parts_of), Decimal(0)),
                submitted_total=sum((p.submitted_total for p in parts_of), Decimal(0)),
                adjusted_total=None,
                adjusted_by=None,
                adjustment_predates_submission=False,
                revisions=[r for p in parts_of for r in p.revisions],
                rollup_unadjusted=sum((p.rollup_unadjusted for p in parts_of), Decimal(0)),
                rollup_adjusted=adjusted,
                by_category={
                    c: sum((p.by_category.get(c, Decimal(0)) for p in parts_of), Decimal(0))
                    for c in CATEGORIES
                },
                quota=sum(quotas, Decimal(0)) if quotas else None,
                actual=actual.get(person, Decimal(0)),
                accuracy=forecast_accuracy(adjusted, actual.get(person, Decimal(0))),
            )
        )
    return ForecastReport(
        period=period,
        as_of=as_of,
        people=people,
        top_level_unadjusted=sum((p.top_level_unadjusted for p in parts), Decimal(0)),
        top_level_adjusted=sum((p.top_level_adjusted for p in parts), Decimal(0)),
        top_level_actual=sum(actual_own.values(), Decimal(0)),
        made_of=[p.period for p in parts],
    )
