"""The analytics' queries: the ledger's events read here, handed to the pure computations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aggregates.errors import NotFoundError
from aggregates.plan import period_bounds
from events import forecast as forecast_events
from events import opportunity as opportunity_events
from projections.base import topics_of
from projections.field_history import (
    DealFlags,
    FieldHistory,
    FlagThresholds,
    deal_flags,
    field_changes,
    flagged_deals,
)
from projections.forecast_errors import ForecastErrors, forecast_errors
from projections.funnel import FunnelFilter
from projections.win_loss import WinLoss, win_loss
from services.analytics.events import recorded_events

OPPORTUNITY_TOPICS = topics_of(
    cls
    for cls in vars(opportunity_events).values()
    if isinstance(cls, type) and cls.__module__ == opportunity_events.__name__
)


FORECAST_TOPICS = topics_of(
    (
        forecast_events.ForecastOpened,
        forecast_events.ForecastSubmitted,
        forecast_events.ForecastRevised,
    )
)


def field_history(
    ledger: Any,
    aggregate_id: str,
    field_name: str | None = None,
    limits: FlagThresholds | None = None,
    now: datetime | None = None,
) -> FieldHistory:
    """Every field change of the aggregate; for an opportunity, its flags too."""
    try:
        uid = UUID(aggregate_id)
    except ValueError:
        raise NotFoundError(f"no aggregate {aggregate_id}") from None
    events = list(ledger.stored_events(uid))
    if not events:
        raise NotFoundError(f"no aggregate {aggregate_id}")
    aggregate_type = events[0].originator_topic.rsplit(":", 1)[-1]
    flags = None
    if aggregate_type == "Opportunity":
        flags = deal_flags(events, now or datetime.now(UTC), limits or FlagThresholds())
    return FieldHistory(
        aggregate_id=str(uid),
        aggregate_type=aggregate_type,
        changes=field_changes(events, field_name),
        flags=flags,
    )


def pipeline_flags(
    ledger: Any,
    scope: FunnelFilter,
    limits: FlagThresholds | None = None,
    now: datetime | None = None,
    open_only: bool = True,
) -> list[DealFlags]:
    """The flagged deals in ``scope``."""
    return flagged_deals(
        recorded_events(ledger, OPPORTUNITY_TOPICS),
        now or datetime.now(UTC),
        limits or FlagThresholds(),
        scope,
        open_only,
    )


def win_loss_analysis(ledger: Any, scope: FunnelFilter) -> WinLoss:
    """Win/loss of the deals closed in ``scope``."""
    return win_loss(recorded_events(ledger, OPPORTUNITY_TOPICS), scope)


def forecast_error_forensics(
    ledger: Any, period: str, as_of: datetime, people: set[str] | None = None
) -> ForecastErrors:
    """What each person (of ``people``, if given) forecast for ``period`` at ``as_of``,
    against what happened, deal by deal."""
    bounds = period_bounds(period)
    org = ledger.organisation()
    subtrees = {p: org.subtree(p) for p in org.people}
    report = forecast_errors(
        recorded_events(ledger, FORECAST_TOPICS),
        recorded_events(ledger, OPPORTUNITY_TOPICS),
        period,
        bounds,
        as_of,
        subtrees,
    )
    if people is not None:
        report.people = [p for p in report.people if p.person_id in people]
    return report
