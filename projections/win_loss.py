"""Win/loss analysis: why deals were lost, to whom, at which stage, and how each source,
owner and product converts, over the deals closed (won or lost) in a period.

Pure: one pass of the deal-state fold (``evolve_deal``) over the deal events; a deal
counts as it stands at the end (a reopened deal is not closed), in its scope and with its
closing date in the period.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from projections.base import RecordedEvent, as_decimal
from projections.funnel import FunnelFilter, evolve_deal

DIMENSIONS = ("source", "owner_id", "product", "region")


class Outcomes(BaseModel):
    """Won and lost deals of one group, and the win rate."""

    key: str = Field(examples=["referral"])
    won: int = 0
    lost: int = 0
    won_amount: Decimal = Decimal(0)
    lost_amount: Decimal = Decimal(0)
    win_rate: Decimal | None = Field(default=None, description="won ÷ (won + lost)")


class WinLoss(BaseModel):
    """The closed deals in the scope, split every way the issue asks for."""

    total: Outcomes
    lost_reasons: list[Outcomes] = Field(description="lost deals by reason")
    competitors: list[Outcomes] = Field(description="lost deals by competitor (none: '')")
    lost_at_stage: list[Outcomes] = Field(description="lost deals by the stage they were at")
    by: dict[str, list[Outcomes]] = Field(description="won and lost by source, owner, product")


def _closed_deals(events: Iterable[RecordedEvent]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for recorded in events:
        row, _ = evolve_deal(rows.get(recorded.aggregate_id), recorded)
        if row is None:
            continue
        if recorded.type_name == "OpportunityLost":
            row = {**row, "lost_reason": recorded.event.reason,
                   "competitor": recorded.event.competitor or ""}  # fmt: skip
        rows[recorded.aggregate_id] = row
    return rows


def win_loss(events: Iterable[RecordedEvent], scope: FunnelFilter = FunnelFilter()) -> WinLoss:  # noqa: B008
    """Win/loss over the deals closed in ``scope`` (its close period: the closing date)."""
    groups: dict[str, dict[str, Outcomes]] = {
        name: {} for name in ("total", "reason", "competitor", "stage", *DIMENSIONS)
    }
    for row in _closed_deals(events).values():
        if row["status"] not in ("won", "lost") or not scope.matches(row, "closed_on"):
            continue
        keys = {"total": "all", **{d: str(row[d]) for d in DIMENSIONS}}
        if row["status"] == "lost":
            keys.update(
                reason=str(row.get("lost_reason", "")),
                competitor=str(row.get("competitor", "")),
                stage=str(row["stage"]),
            )
        for group, key in keys.items():
            _count(groups[group].setdefault(key, Outcomes(key=key)), row)
    ordered = {name: _ordered(found) for name, found in groups.items()}
    return WinLoss(
        total=ordered["total"][0] if ordered["total"] else Outcomes(key="all"),
        lost_reasons=ordered["reason"],
        competitors=ordered["competitor"],
        lost_at_stage=sorted(ordered["stage"], key=lambda o: int(o.key)),
        by={d: ordered[d] for d in DIMENSIONS},
    )


def _count(outcomes: Outcomes, row: dict[str, Any]) -> None:
    if row["status"] == "won":
        outcomes.won += 1
        outcomes.won_amount += as_decimal(row["won_amount"])
    else:
        outcomes.lost += 1
        outcomes.lost_amount += as_decimal(row["amount"])
    closed = outcomes.won + outcomes.lost
    outcomes.win_rate = (Decimal(outcomes.won) / closed).quantize(Decimal("0.0001"))


def _ordered(found: dict[str, Outcomes]) -> list[Outcomes]:
    return sorted(found.values(), key=lambda o: (-(o.won + o.lost), o.key))
