"""The one fold of a deal's funnel state: its row after each event, and the stage stays
it closes.

A deal's *funnel status* is its status, except that an open deal disqualified into
nurturing (back to marketing) is ``nurturing`` until it is qualified again: it counts
in no sales-funnel stage, only in the separate nurturing figures. Entering or leaving
nurturing ends a stay like a change of stage.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aggregates.funnel import (
    WON_STAGE,
)
from events import opportunity as opportunity_events
from projections.base import (
    RecordedEvent,
    topics_of,
)
from projections.store import Row

DEAL_COLUMNS = (
    "opportunity_id",
    "customer_id",
    "owner_id",
    "title",
    "source",
    "product",
    "region",
    "amount",
    "expected_close",
    "stage",
    "status",
    "qualification",
    "opened_at",
    "stage_entered_at",
    "max_stage",
    "won_amount",
    "closed_on",
    "closed_at",
)
INTERVAL_COLUMNS = (
    "opportunity_id",
    "left_position",
    "stage",
    "entered_at",
    "left_at",
    "seconds",
    "outcome",
    "amount",
    "owner_id",
    "source",
    "product",
    "region",
    "expected_close",
    "nurturing",
)

FUNNEL_EVENT_TYPES = (
    opportunity_events.OpportunityOpened,
    opportunity_events.OpportunityQualified,
    opportunity_events.OpportunityDisqualified,
    opportunity_events.StageAdvanced,
    opportunity_events.PrimaryOwnerChanged,
    opportunity_events.AmountRevised,
    opportunity_events.CloseDateRevised,
    opportunity_events.OpportunityWon,
    opportunity_events.OpportunityLost,
    opportunity_events.OpportunityReopened,
)
FUNNEL_TOPICS = topics_of(FUNNEL_EVENT_TYPES)


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def evolve_deal(
    row: Row | None, recorded: RecordedEvent
) -> tuple[Row | None, tuple[Any, ...] | None]:
    """The deal's row after ``recorded``, and the stage interval the event closed (if any,
    its values in ``INTERVAL_COLUMNS`` order).

    Pure: used by the projection and by the as-of fold alike.
    """
    kind = recorded.type_name
    if kind == "OpportunityOpened":
        return _opened_row(recorded), None
    if row is None or kind not in _DEAL_CHANGES:
        return row, None
    at = recorded.recorded_at
    new = dict(row)
    _DEAL_CHANGES[kind](new, recorded.event, at)
    was_open, is_open = row["status"] == "open", new["status"] == "open"
    # ``is_nurturing`` of each, inline: this runs for every deal event of a catch-up.
    was_nurtured = was_open and row["qualification"] == "nurturing"
    is_nurtured = is_open and new["qualification"] == "nurturing"
    if is_open and is_nurtured != was_nurtured:
        new["stage_entered_at"] = at
    left_stage = new["stage"] != row["stage"] or not is_open
    if was_open and (left_stage or is_nurtured != was_nurtured):
        return new, _closed_stay(row, new, recorded.position, at, was_nurtured, is_nurtured)
    return new, None


def _opened_row(recorded: RecordedEvent) -> Row:
    """A new deal's row: in stage 1, open, its qualification pending."""
    event = recorded.event
    at = recorded.recorded_at
    return {
        "opportunity_id": recorded.aggregate_id,
        "customer_id": event.customer_id,
        "owner_id": event.owner_id,
        "title": event.title,
        "source": event.source,
        "product": event.product,
        "region": event.region,
        "amount": event.amount,
        "expected_close": event.expected_close.isoformat(),
        "stage": 1,
        "status": "open",
        "qualification": "pending",
        "opened_at": at,
        "stage_entered_at": at,
        "max_stage": 1,
        "won_amount": None,
        "closed_on": None,
        "closed_at": None,
    }


def _closed_stay(
    row: Row, new: Row, position: int, at: str, was_nurtured: bool, is_nurtured: bool
) -> tuple[Any, ...]:
    """The stay in a stage that ended when the open deal ``row`` became ``new``: its
    values in ``INTERVAL_COLUMNS`` order, with where the deal went."""
    if new["status"] != "open":
        outcome = new["status"]
    elif is_nurtured != was_nurtured:
        outcome = "nurturing" if is_nurtured else "qualified"
    else:
        outcome = f"stage {new['stage']}"
    return (  # in INTERVAL_COLUMNS order: appended as it is
        row["opportunity_id"],
        position,
        row["stage"],
        row["stage_entered_at"],
        at,
        _seconds_between(row["stage_entered_at"], at),
        outcome,
        row["amount"],
        row["owner_id"],
        row["source"],
        row["product"],
        row["region"],
        row["expected_close"],
        int(was_nurtured),
    )


def is_nurturing(row: Row) -> bool:
    """An open deal sent back to marketing: outside the sales funnel until requalified."""
    return bool(row["status"] == "open" and row["qualification"] == "nurturing")


def funnel_status(row: Row) -> str:
    """``nurturing`` for a deal being nurtured, else its status (open, won, lost)."""
    return "nurturing" if is_nurturing(row) else str(row["status"])


def _enter_stage(row: Row, stage: int, at: str) -> None:
    row["stage"] = stage
    row["stage_entered_at"] = at
    row["max_stage"] = max(int(row["max_stage"]), stage)


def _qualified(row: Row, event: Any, at: str) -> None:
    row["qualification"] = "qualified"


def _disqualified(row: Row, event: Any, at: str) -> None:
    row["qualification"] = "nurturing"
    if int(row["stage"]) != 1:
        _enter_stage(row, 1, at)


def _stage_advanced(row: Row, event: Any, at: str) -> None:
    _enter_stage(row, event.to_stage, at)


def _owner_changed(row: Row, event: Any, at: str) -> None:
    row["owner_id"] = event.owner_id


def _amount_revised(row: Row, event: Any, at: str) -> None:
    row["amount"] = event.amount


def _close_date_revised(row: Row, event: Any, at: str) -> None:
    row["expected_close"] = event.expected_close.isoformat()


def _won(row: Row, event: Any, at: str) -> None:
    _enter_stage(row, WON_STAGE, at)
    row["status"] = "won"
    row["won_amount"] = event.amount
    row["closed_on"] = event.closed_on.isoformat()
    row["closed_at"] = at


def _lost(row: Row, event: Any, at: str) -> None:
    row["status"] = "lost"
    row["stage_entered_at"] = at
    row["closed_on"] = event.closed_on.isoformat()
    row["closed_at"] = at


def _reopened(row: Row, event: Any, at: str) -> None:
    row["status"] = "open"
    row["stage"] = event.stage
    row["stage_entered_at"] = at
    row["won_amount"] = None
    row["closed_on"] = None
    row["closed_at"] = None


_DEAL_CHANGES: dict[str, Callable[[Row, Any, str], None]] = {
    "OpportunityQualified": _qualified,
    "OpportunityDisqualified": _disqualified,
    "StageAdvanced": _stage_advanced,
    "PrimaryOwnerChanged": _owner_changed,
    "AmountRevised": _amount_revised,
    "CloseDateRevised": _close_date_revised,
    "OpportunityWon": _won,
    "OpportunityLost": _lost,
    "OpportunityReopened": _reopened,
}
