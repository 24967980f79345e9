"""Field history of any aggregate, and Pipeline-Inspection-style flags of deals.

Field history replays an aggregate's events one by one and reports every field whose
value changed (``old → new``), with who, when and why (the event's ``reason``, if it has
one); dictionaries (the deal team, bid details, a customer's profile, the people of the
organisation) are reported key by key (``team.alice``). Nothing is cut off in time.

Flags come from one fold over a deal's events (``DealFlagFold``), used for one deal and
for the whole pipeline alike: pushed at least N times, amount down by more than X % from
its highest, no activity in N days, expected close in the past.

Pure: fed by the events; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from projections.base import RecordedEvent, as_decimal, iso_timestamp
from projections.funnel import FunnelFilter, evolve_deal

_UNSET: Any = object()
EVERY_DEAL = FunnelFilter()


class FieldChange(BaseModel):
    """One field's change by one event."""

    version: int = Field(examples=[4])
    at: datetime
    actor: str = Field(examples=["alice"])
    event_type: str = Field(examples=["CloseDateRevised"])
    field: str = Field(examples=["expected_close"])
    old: Any = Field(examples=["2026-05-31"])
    new: Any = Field(examples=["2026-06-30"])
    reason: str | None = Field(None, examples=["customer moved the decision"])


@dataclass(frozen=True)
class FlagThresholds:
    """When a deal is flagged."""

    pushed_times: int = 2
    amount_drop_percent: Decimal = Decimal(20)
    idle_days: int = 14


class DealFlags(BaseModel):
    """What Pipeline Inspection would flag on a deal, with the figures behind it."""

    opportunity_id: str
    title: str
    owner_id: str
    status: str
    pushed_times: int = Field(description="expected-close revisions that moved it later")
    amount_drop_percent: Decimal = Field(description="down from the highest amount, in %")
    last_activity_at: str | None = Field(description="the deal's latest event of any kind")
    expected_close: str
    flags: list[str] = Field(
        examples=[["pushed", "amount_down", "no_activity", "close_date_passed"]]
    )


class FieldHistory(BaseModel):
    """Every change of every field of one aggregate, oldest first."""

    aggregate_id: str
    aggregate_type: str = Field(examples=["Opportunity"])
    changes: list[FieldChange]
    flags: DealFlags | None = Field(None, description="for an opportunity: its flags now")


def plain(value: Any) -> Any:
    """``value`` as JSON would carry it: decimals and dates as text, enums as values."""
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, (Decimal, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return plain(vars(value)) if hasattr(value, "__dict__") else str(value)


def _flat(aggregate: Any) -> dict[str, Any]:
    """The aggregate's public fields as plain JSON values, dictionaries one level flat."""
    flat: dict[str, Any] = {}
    for name, value in vars(aggregate).items():
        if name.startswith("_"):
            continue
        converted = plain(value)
        if isinstance(converted, dict):
            for key, item in converted.items():
                flat[f"{name}.{key}"] = item
        else:
            flat[name] = converted
    return flat


def field_changes(events: Iterable[Any], field_name: str | None = None) -> list[FieldChange]:
    """The changes made by ``events`` (one aggregate's, in version order), optionally of
    ``field_name`` only (a field, or its keys: ``team`` covers ``team.alice``)."""
    aggregate: Any = None
    before: dict[str, Any] = {}
    changes: list[FieldChange] = []
    for event in events:
        aggregate = event.mutate(aggregate)
        after = _flat(aggregate)
        for name in sorted(before.keys() | after.keys()):
            old, new = before.get(name, _UNSET), after.get(name, _UNSET)
            if old == new or not _selected(name, field_name):
                continue
            old, new = (None if v is _UNSET else v for v in (old, new))
            changes.append(
                FieldChange(
                    version=event.originator_version,
                    at=event.timestamp,
                    actor=str(getattr(event, "actor", "")),
                    event_type=type(event).__name__,
                    field=name,
                    old=old,
                    new=new,
                    reason=getattr(event, "reason", None),
                )
            )
        before = after
    return changes


def _selected(name: str, field_name: str | None) -> bool:
    return field_name is None or name == field_name or name.startswith(f"{field_name}.")


class DealFlagFold:
    """Folds deal events (any opportunity event, in order) into each deal's flag figures."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.pushes: dict[str, int] = {}
        self.highest: dict[str, Decimal] = {}
        self.last_event: dict[str, str] = {}

    def add(self, recorded: RecordedEvent) -> None:
        deal = recorded.aggregate_id
        if recorded.type_name == "CloseDateRevised":
            event = recorded.event
            if event.expected_close > event.previous_expected_close:
                self.pushes[deal] = self.pushes.get(deal, 0) + 1
        row, _ = evolve_deal(self.rows.get(deal), recorded)
        if row is None:
            return
        self.rows[deal] = row
        amount = as_decimal(row["amount"])
        self.highest[deal] = max(self.highest.get(deal, amount), amount)
        self.last_event[deal] = recorded.recorded_at

    def flags(self, deal: str, now: datetime, limits: FlagThresholds) -> DealFlags:
        row = self.rows[deal]
        highest, amount = self.highest[deal], as_decimal(row["amount"])
        drop = ((highest - amount) * 100 / highest).quantize(Decimal("0.01")) if highest else 0
        last = self.last_event.get(deal)
        found = []
        is_open = row["status"] == "open"
        if self.pushes.get(deal, 0) >= limits.pushed_times:
            found.append("pushed")
        if drop > limits.amount_drop_percent:
            found.append("amount_down")
        if is_open and (
            last is None or last < iso_timestamp(now - timedelta(days=limits.idle_days))
        ):
            found.append("no_activity")
        if is_open and row["expected_close"] < now.date().isoformat():
            found.append("close_date_passed")
        return DealFlags(
            opportunity_id=deal,
            title=str(row["title"]),
            owner_id=str(row["owner_id"]),
            status=str(row["status"]),
            pushed_times=self.pushes.get(deal, 0),
            amount_drop_percent=Decimal(drop),
            last_activity_at=last,
            expected_close=str(row["expected_close"]),
            flags=found,
        )


def flagged_deals(
    events: Iterable[RecordedEvent],
    now: datetime,
    limits: FlagThresholds = FlagThresholds(),  # noqa: B008 - frozen, immutable
    scope: FunnelFilter = EVERY_DEAL,
    open_only: bool = True,
) -> list[DealFlags]:
    """The deals in ``scope`` (open ones unless ``open_only`` is false) with at least one
    flag, by id."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    fold = DealFlagFold()
    for recorded in events:
        fold.add(recorded)
    found = []
    for deal, row in sorted(fold.rows.items()):
        if not scope.matches(row):
            continue
        if open_only and row["status"] != "open":
            continue
        flags = fold.flags(deal, now, limits)
        if flags.flags:
            found.append(flags)
    return found


def deal_flags(events: Iterable[Any], now: datetime, limits: FlagThresholds) -> DealFlags | None:
    """One deal's flags from its domain events (None if they are not an opportunity's)."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    fold = DealFlagFold()
    deal = None
    for event in events:
        recorded = RecordedEvent.of(event.originator_version, event)
        deal = recorded.aggregate_id
        fold.add(recorded)
    if deal is None or deal not in fold.rows:
        return None
    return fold.flags(deal, now, limits)
