"""Forecasts: every submission and revision, rolled up the hierarchy, against actuals.

Tables: ``forecast_owners`` (whose forecast for which period), ``forecast_submissions``
and ``forecast_revisions`` (one row per event, so "what did we believe on date X" is a
query over them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from aggregates.plan import period_bounds
from events import forecast as forecast_events
from projections.base import (
    KeyedRows,
    Projection,
    RecordedEvent,
    as_decimal,
    create_table,
    insert_rows,
    iso_timestamp,
    keys_from_earlier_batches,
    topics_of,
)
from projections.store import ReadStore, Row, Transaction

OWNER_COLUMNS = ("forecast_id", "person_id", "period")
SUBMISSION_COLUMNS = (
    "forecast_id",
    "version",
    "person_id",
    "period",
    "recorded_at",
    "actor",
    "own_total",
    "team_total",
    "total",
    "opportunity_ids",
)
REVISION_COLUMNS = (
    "forecast_id",
    "version",
    "person_id",
    "period",
    "recorded_at",
    "actor",
    "previous_total",
    "adjusted_total",
    "reason",
)
_FORECAST_EVENT_TYPES = (
    forecast_events.ForecastOpened,
    forecast_events.ForecastSubmitted,
    forecast_events.ForecastRevised,
)
_FORECAST_EVENTS = frozenset(cls.__name__ for cls in _FORECAST_EVENT_TYPES)


class ForecastProjection(Projection):
    """Every forecast submission and revision, per person and period."""

    name = "forecasts"
    topics = topics_of(_FORECAST_EVENT_TYPES)
    tables = ("forecast_owners", "forecast_submissions", "forecast_revisions")
    indexes = {
        "forecast_submissions_period": "forecast_submissions (period, person_id)",
        "forecast_revisions_period": "forecast_revisions (period, person_id)",
    }

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "forecast_owners ("
            "forecast_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, period TEXT NOT NULL)",
        )
        create_table(
            tx,
            "forecast_submissions ("
            "forecast_id TEXT NOT NULL, version INTEGER NOT NULL, person_id TEXT NOT NULL, "
            "period TEXT NOT NULL, recorded_at TEXT NOT NULL, actor TEXT NOT NULL, "
            "own_total NUMERIC NOT NULL, team_total NUMERIC NOT NULL, total NUMERIC NOT NULL, "
            "opportunity_ids TEXT NOT NULL, PRIMARY KEY (forecast_id, version))",
        )
        create_table(
            tx,
            "forecast_revisions ("
            "forecast_id TEXT NOT NULL, version INTEGER NOT NULL, person_id TEXT NOT NULL, "
            "period TEXT NOT NULL, recorded_at TEXT NOT NULL, actor TEXT NOT NULL, "
            "previous_total NUMERIC NOT NULL, adjusted_total NUMERIC NOT NULL, "
            "reason TEXT NOT NULL, PRIMARY KEY (forecast_id, version))",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        relevant = [e for e in events if e.type_name in _FORECAST_EVENTS]
        if not relevant:
            return
        owners = KeyedRows("forecast_owners", "forecast_id", OWNER_COLUMNS)
        owners.load(tx, keys_from_earlier_batches(relevant, "ForecastOpened"))
        submissions: list[Row] = []
        revisions: list[Row] = []
        for recorded in relevant:
            event = recorded.event
            if recorded.type_name == "ForecastOpened":
                owners.put(
                    {
                        "forecast_id": recorded.aggregate_id,
                        "person_id": event.person_id,
                        "period": event.period,
                    }
                )
                continue
            owner = owners.get(recorded.aggregate_id)
            if owner is None:
                continue
            common = {
                "forecast_id": recorded.aggregate_id,
                "version": event.originator_version,
                "person_id": owner["person_id"],
                "period": owner["period"],
                "recorded_at": recorded.recorded_at,
                "actor": recorded.actor,
            }
            if recorded.type_name == "ForecastSubmitted":
                submissions.append(
                    {
                        **common,
                        "own_total": event.own_total,
                        "team_total": event.team_total,
                        "total": event.total,
                        "opportunity_ids": json.dumps(
                            [line["opportunity_id"] for line in event.lines]
                        ),
                    }
                )
            else:
                revisions.append(
                    {
                        **common,
                        "previous_total": event.previous_total,
                        "adjusted_total": event.adjusted_total,
                        "reason": event.reason,
                    }
                )
        owners.flush(tx)
        insert_rows(tx, "forecast_submissions", SUBMISSION_COLUMNS, submissions)
        insert_rows(tx, "forecast_revisions", REVISION_COLUMNS, revisions)


# Queries.


class ForecastRevisionView(BaseModel):
    """An adjustment of a forecast's total, by its owner or a superior."""

    actor: str = Field(examples=["carol"])
    recorded_at: str
    previous_total: Decimal = Field(examples=["1200000"])
    adjusted_total: Decimal = Field(examples=["1000000"])
    reason: str = Field(examples=["two deals look late"])


class PersonForecast(BaseModel):
    """One person's forecast for the period, their roll-up and the actual result."""

    person_id: str = Field(examples=["alice"])
    manager_id: str | None = Field(examples=["carol"])
    submitted: bool
    submitted_at: str | None
    own_total: Decimal = Field(description="own confirmed deals as submitted")
    submitted_total: Decimal = Field(description="own plus team, as submitted")
    adjusted_total: Decimal | None = Field(description="the latest revision, if any")
    revisions: list[ForecastRevisionView]
    rollup_unadjusted: Decimal = Field(
        description="own totals of this person and everyone below, without any revision"
    )
    rollup_adjusted: Decimal = Field(
        description="the same, taking each level's latest revision where one was made"
    )
    actual: Decimal = Field(description="won amount closed in the period, this person and below")
    accuracy: Decimal | None = Field(
        description="1 − |adjusted roll-up − actual| ÷ actual (none while nothing is won)"
    )


class ForecastReport(BaseModel):
    """A period's forecasts at every level of the hierarchy, as known at ``as_of``."""

    period: str = Field(examples=["2026-Q2"])
    as_of: datetime | None
    people: list[PersonForecast]
    top_level_unadjusted: Decimal
    top_level_adjusted: Decimal
    top_level_actual: Decimal


def query_forecast_report(
    database: ReadStore,
    period: str,
    managers: Mapping[str, str | None],
    as_of: datetime | None = None,
) -> ForecastReport:
    """Forecasts for ``period`` rolled up along ``managers`` (person → manager).

    With ``as_of``, only submissions and revisions recorded by then count: what the
    organisation believed at that moment. Actuals are always today's won deals.
    """
    start, end = period_bounds(period)
    cutoff = iso_timestamp(as_of) if as_of is not None else "9999"
    with database.transaction() as tx:
        submissions = tx.execute(
            f"SELECT {', '.join(SUBMISSION_COLUMNS)} FROM forecast_submissions "
            "WHERE period = %s AND recorded_at <= %s ORDER BY forecast_id, version",
            [period, cutoff],
        )
        revisions = tx.execute(
            f"SELECT {', '.join(REVISION_COLUMNS)} FROM forecast_revisions "
            "WHERE period = %s AND recorded_at <= %s ORDER BY forecast_id, version",
            [period, cutoff],
        )
        actual_rows = tx.execute(
            "SELECT owner_id, SUM(won_amount) AS amount FROM funnel_opportunities "
            "WHERE status = 'won' AND closed_on >= %s AND closed_on <= %s GROUP BY owner_id",
            [start.isoformat(), end.isoformat()],
        )
    latest: dict[str, Row] = {}
    for row in submissions:
        latest[row["person_id"]] = row
    adjustments: dict[str, list[Row]] = {}
    for row in revisions:
        submitted = latest.get(row["person_id"])
        if submitted is not None and row["version"] > submitted["version"]:
            adjustments.setdefault(row["person_id"], []).append(row)
    actual_own = {row["owner_id"]: as_decimal(row["amount"]) for row in actual_rows}
    people = sorted(set(managers) | set(latest) | set(actual_own))
    reports: dict[str, list[str]] = {}
    for person in people:
        manager = managers.get(person)
        if manager is not None:
            reports.setdefault(manager, []).append(person)

    rollups: dict[str, tuple[Decimal, Decimal, Decimal]] = {}

    def roll_up(person: str, seen: frozenset[str]) -> tuple[Decimal, Decimal, Decimal]:
        if person in rollups:
            return rollups[person]
        below = [roll_up(r, seen | {person}) for r in reports.get(person, []) if r not in seen]
        own = as_decimal(latest[person]["own_total"]) if person in latest else Decimal(0)
        unadjusted = own + sum((b[0] for b in below), Decimal(0))
        revised = adjustments.get(person)
        adjusted = (
            as_decimal(revised[-1]["adjusted_total"])
            if revised
            else own + sum((b[1] for b in below), Decimal(0))
        )
        actual = actual_own.get(person, Decimal(0)) + sum((b[2] for b in below), Decimal(0))
        rollups[person] = (unadjusted, adjusted, actual)
        return rollups[person]

    lines = []
    for person in people:
        unadjusted, adjusted, actual = roll_up(person, frozenset())
        submitted = latest.get(person)
        revised = adjustments.get(person, [])
        lines.append(
            PersonForecast(
                person_id=person,
                manager_id=managers.get(person),
                submitted=submitted is not None,
                submitted_at=submitted["recorded_at"] if submitted else None,
                own_total=as_decimal(submitted["own_total"]) if submitted else Decimal(0),
                submitted_total=as_decimal(submitted["total"]) if submitted else Decimal(0),
                adjusted_total=as_decimal(revised[-1]["adjusted_total"]) if revised else None,
                revisions=[
                    ForecastRevisionView(
                        actor=r["actor"],
                        recorded_at=r["recorded_at"],
                        previous_total=as_decimal(r["previous_total"]),
                        adjusted_total=as_decimal(r["adjusted_total"]),
                        reason=r["reason"],
                    )
                    for r in revised
                ],
                rollup_unadjusted=unadjusted,
                rollup_adjusted=adjusted,
                actual=actual,
                accuracy=forecast_accuracy(adjusted, actual),
            )
        )
    tops = [line for line in lines if line.manager_id is None or line.manager_id not in managers]
    return ForecastReport(
        period=period,
        as_of=as_of,
        people=lines,
        top_level_unadjusted=sum((t.rollup_unadjusted for t in tops), Decimal(0)),
        top_level_adjusted=sum((t.rollup_adjusted for t in tops), Decimal(0)),
        top_level_actual=sum((t.actual for t in tops), Decimal(0)),
    )


def forecast_accuracy(forecast: Decimal, actual: Decimal) -> Decimal | None:
    """1 − |forecast − actual| ÷ actual, floored at 0; None while nothing is won."""
    if actual == 0:
        return None
    return max(Decimal(0), 1 - abs(forecast - actual) / actual).quantize(Decimal("0.0001"))
