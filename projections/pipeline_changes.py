"""What changed in the pipeline between two moments, as a waterfall that reconciles exactly.

The pipeline at a moment is what the as-of funnel counts as open: every deal that is
open, not being nurtured, and in the scope (owners, region, product, source, period of
expected close). Each deal's state at T1 and at T2 comes from the one deal-state fold
(``evolve_deal``), cut per deal as the as-of funnel cuts it (a deal's events after its
first event later than the moment are ignored). Every deal then contributes to exactly
the steps that explain its difference, so that

    pipeline(T1) + Σ steps = pipeline(T2)

by count, amount and weighted amount (exact decimals, unrounded). A deal in the pipeline
at both moments changes the count by nothing; its amount change is split into an amount
step (weighted at its T1 stage's probability) and a stage step (its T2 amount times the
change of probability), so weighted amounts reconcile too.

Pure: fed by the deal events in position order; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from aggregates.funnel import STAGE_PROBABILITY
from projections.base import RecordedEvent, as_decimal, iso_timestamp
from projections.funnel import FunnelFilter, evolve_deal, is_nurturing

Row = dict[str, Any]

STEP_LABELS: dict[str, str] = {
    "new": "new deals",
    "moved_in": "moved into the period",
    "returned": "reopened or requalified",
    "owner_in": "owner changed into the scope",
    "amount_increased": "amount increased",
    "amount_decreased": "amount decreased",
    "stage_advanced": "stage advanced",
    "stage_regressed": "stage regressed",
    "pushed_out": "pushed out of the period (close later)",
    "pulled_out": "moved out of the period (close earlier)",
    "won": "won",
    "lost": "lost",
    "nurtured": "disqualified into nurturing",
    "owner_out": "owner changed out of the scope",
}
"""Every step of the waterfall, in the order it is shown."""


EVERY_DEAL = FunnelFilter()


class PipelineTotals(BaseModel):
    """The pipeline at one moment: open deals in the scope."""

    count: int = Field(examples=[120])
    amount: Decimal = Field(examples=["4800000"])
    weighted_amount: Decimal = Field(examples=["1210000.00"])


class ChangedDeal(BaseModel):
    """One deal behind a step, and what it adds to the step."""

    opportunity_id: str
    title: str
    owner_id: str
    count: int = Field(description="+1 entered, −1 left, 0 stayed", examples=[-1])
    amount: Decimal = Field(examples=["-40000"])
    weighted_amount: Decimal = Field(examples=["-12000.00"])
    detail: str = Field(examples=["stage 3 → 5"])


class WaterfallStep(BaseModel):
    """One kind of change: its totals and the deals behind it."""

    step: str = Field(examples=["pushed_out"])
    label: str = Field(examples=["pushed out of the period (close later)"])
    count: int
    amount: Decimal
    weighted_amount: Decimal
    deals: list[ChangedDeal]


class CloseDateMove(BaseModel):
    """A deal of the pipeline (at T1 or T2) whose expected close moved in the window."""

    opportunity_id: str
    title: str
    owner_id: str
    times: int = Field(description="how many revisions moved it this way", examples=[2])
    first_close: str = Field(examples=["2026-05-31"])
    last_close: str = Field(examples=["2026-08-31"])


class OwnerChange(BaseModel):
    """A change of primary owner, in the window, of a deal of the pipeline (T1 or T2)."""

    opportunity_id: str
    title: str
    previous_owner_id: str
    owner_id: str
    at: str


class PipelineChanges(BaseModel):
    """The pipeline at T1, every change until T2 with its deals, and the pipeline at T2."""

    from_moment: datetime
    to_moment: datetime
    start: PipelineTotals
    steps: list[WaterfallStep]
    end: PipelineTotals
    reconciled: bool = Field(description="start + every step = end, by count and amounts")
    pushed: list[CloseDateMove] = Field(
        description="expected close moved later (how many times), whether or not it left"
    )
    pulled_in: list[CloseDateMove] = Field(description="expected close moved earlier")
    owner_changes: list[OwnerChange]


@dataclass
class _DealWindow:
    """One deal: its row at T1 and at T2, and its close-date and owner moves in between."""

    at_start: Row | None = None
    at_end: Row | None = None
    start_cut: bool = False
    end_cut: bool = False
    pushes: list[tuple[str, str]] = field(default_factory=list)
    pulls: list[tuple[str, str]] = field(default_factory=list)
    owners: list[tuple[str, str, str]] = field(default_factory=list)


def fold_windows(
    events: Iterable[RecordedEvent], start: datetime, end: datetime
) -> dict[str, _DealWindow]:
    """Every deal's state at ``start`` and ``end`` and its moves between them."""
    low, high = iso_timestamp(_utc(start)), iso_timestamp(_utc(end))
    deals: dict[str, _DealWindow] = {}
    for recorded in events:
        deal = deals.get(recorded.aggregate_id)
        if deal is None:
            deal = deals[recorded.aggregate_id] = _DealWindow()
        elif deal.end_cut:
            continue
        at = recorded.recorded_at
        if at > high:
            deal.end_cut = deal.start_cut = True
            continue
        row, _ = evolve_deal(deal.at_end, recorded)
        if at > low:
            deal.start_cut = True
            _note_move(deal, recorded)
        elif not deal.start_cut:
            deal.at_start = row
        deal.at_end = row
    return deals


def _note_move(deal: _DealWindow, recorded: RecordedEvent) -> None:
    event = recorded.event
    if recorded.type_name == "CloseDateRevised":
        move = (event.previous_expected_close.isoformat(), event.expected_close.isoformat())
        (deal.pushes if move[1] > move[0] else deal.pulls).append(move)
    elif recorded.type_name == "PrimaryOwnerChanged":
        deal.owners.append((event.previous_owner_id, event.owner_id, recorded.recorded_at))


def in_pipeline(row: Row | None, scope: FunnelFilter) -> bool:
    """Whether the deal counts in the pipeline: open, not nurtured, in the scope."""
    return (
        row is not None and row["status"] == "open" and not is_nurturing(row) and scope.matches(row)
    )


def weighted(row: Row) -> Decimal:
    return as_decimal(row["amount"]) * STAGE_PROBABILITY[int(row["stage"])]


def pipeline_totals(rows: Iterable[Row | None], scope: FunnelFilter) -> PipelineTotals:
    """The pipeline over deal rows (unrounded weighted amount)."""
    count, amount, weight = 0, Decimal(0), Decimal(0)
    for row in rows:
        if row is not None and in_pipeline(row, scope):
            count += 1
            amount += as_decimal(row["amount"])
            weight += weighted(row)
    return PipelineTotals(count=count, amount=amount, weighted_amount=weight)


Contribution = tuple[str, int, Decimal, Decimal, str]
"""(step, count, amount, weighted amount, detail)."""


def contributions(before: Row | None, after: Row | None, scope: FunnelFilter) -> list[Contribution]:
    """The steps one deal adds to, from its state at T1 and at T2."""
    was, now = in_pipeline(before, scope), in_pipeline(after, scope)
    if was and now:
        assert before is not None and after is not None
        return _stayed(before, after)
    if was:
        assert before is not None and after is not None
        step, detail = _exit_step(before, after, scope)
        return [(step, -1, -as_decimal(before["amount"]), -weighted(before), detail)]
    if now:
        assert after is not None
        step, detail = _entry_step(before, after, scope)
        return [(step, 1, as_decimal(after["amount"]), weighted(after), detail)]
    return []


def _stayed(before: Row, after: Row) -> list[Contribution]:
    found: list[Contribution] = []
    a1, a2 = as_decimal(before["amount"]), as_decimal(after["amount"])
    s1, s2 = int(before["stage"]), int(after["stage"])
    if a2 != a1:
        step = "amount_increased" if a2 > a1 else "amount_decreased"
        found.append((step, 0, a2 - a1, (a2 - a1) * STAGE_PROBABILITY[s1], f"amount {a1} → {a2}"))
    if s2 != s1:
        step = "stage_advanced" if s2 > s1 else "stage_regressed"
        change = a2 * (STAGE_PROBABILITY[s2] - STAGE_PROBABILITY[s1])
        found.append((step, 0, Decimal(0), change, f"stage {s1} → {s2}"))
    return found


def _exit_step(before: Row, after: Row, scope: FunnelFilter) -> tuple[str, str]:
    status = after["status"]
    if status in ("won", "lost"):
        return status, f"{status} on {after['closed_on']} at stage {before['stage']}"
    if is_nurturing(after):
        return "nurtured", f"disqualified at stage {before['stage']}"
    close = f"close {before['expected_close']} → {after['expected_close']}"
    if scope.close_to is not None and after["expected_close"] > scope.close_to.isoformat():
        return "pushed_out", close
    if scope.close_from is not None and after["expected_close"] < scope.close_from.isoformat():
        return "pulled_out", close
    return "owner_out", f"owner {before['owner_id']} → {after['owner_id']}"


def _entry_step(before: Row | None, after: Row, scope: FunnelFilter) -> tuple[str, str]:
    if before is None:
        return "new", f"opened at stage {after['stage']}"
    if before["status"] in ("won", "lost") or is_nurturing(before):
        was = "nurturing" if is_nurturing(before) else before["status"]
        return "returned", f"{was} → open at stage {after['stage']}"
    close_scope = FunnelFilter(close_from=scope.close_from, close_to=scope.close_to)
    if not close_scope.matches(before):
        return "moved_in", f"close {before['expected_close']} → {after['expected_close']}"
    return "owner_in", f"owner {before['owner_id']} → {after['owner_id']}"


def pipeline_changes(
    events: Iterable[RecordedEvent],
    start: datetime,
    end: datetime,
    scope: FunnelFilter = EVERY_DEAL,
) -> PipelineChanges:
    """The waterfall from ``start`` to ``end`` over the deal events (position order)."""
    if _utc(end) <= _utc(start):
        raise ValueError("the end of the window must be after its start")
    windows = fold_windows(events, start, end)
    steps = {name: _EmptyStep(name) for name in STEP_LABELS}
    for deal_id, deal in windows.items():
        for step, count, amount, weight, detail in contributions(deal.at_start, deal.at_end, scope):
            steps[step].add(deal_id, deal.at_end or {}, count, amount, weight, detail)
    first = pipeline_totals((d.at_start for d in windows.values()), scope)
    last = pipeline_totals((d.at_end for d in windows.values()), scope)
    built = [s.build() for s in steps.values()]
    involved = {
        k: d
        for k, d in windows.items()
        if in_pipeline(d.at_start, scope) or in_pipeline(d.at_end, scope)
    }
    return PipelineChanges(
        from_moment=start,
        to_moment=end,
        start=first,
        steps=built,
        end=last,
        reconciled=reconciles(first, built, last),
        pushed=_moves(involved, "pushes"),
        pulled_in=_moves(involved, "pulls"),
        owner_changes=_owner_changes(involved),
    )


def reconciles(first: PipelineTotals, steps: list[WaterfallStep], last: PipelineTotals) -> bool:
    """Whether ``first`` plus every step is ``last``, by count, amount and weighted amount."""
    return (
        first.count + sum(s.count for s in steps) == last.count
        and first.amount + sum((s.amount for s in steps), Decimal(0)) == last.amount
        and first.weighted_amount + sum((s.weighted_amount for s in steps), Decimal(0))
        == last.weighted_amount
    )


class _EmptyStep:
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.amount = Decimal(0)
        self.weighted = Decimal(0)
        self.deals: list[ChangedDeal] = []

    def add(
        self, deal_id: str, row: Row, count: int, amount: Decimal, weight: Decimal, detail: str
    ) -> None:
        self.count += count
        self.amount += amount
        self.weighted += weight
        self.deals.append(
            ChangedDeal(
                opportunity_id=deal_id,
                title=str(row.get("title", "")),
                owner_id=str(row.get("owner_id", "")),
                count=count,
                amount=amount,
                weighted_amount=weight,
                detail=detail,
            )
        )

    def build(self) -> WaterfallStep:
        return WaterfallStep(
            step=self.name,
            label=STEP_LABELS[self.name],
            count=self.count,
            amount=self.amount,
            weighted_amount=self.weighted,
            deals=sorted(self.deals, key=lambda d: d.opportunity_id),
        )


def _moves(deals: dict[str, _DealWindow], kind: str) -> list[CloseDateMove]:
    found = []
    for deal_id, deal in sorted(deals.items()):
        moves: list[tuple[str, str]] = getattr(deal, kind)
        if moves:
            row: Any = deal.at_end or {}
            found.append(
                CloseDateMove(
                    opportunity_id=deal_id,
                    title=str(row.get("title", "")),
                    owner_id=str(row.get("owner_id", "")),
                    times=len(moves),
                    first_close=moves[0][0],
                    last_close=moves[-1][1],
                )
            )
    return found


def _owner_changes(deals: dict[str, _DealWindow]) -> list[OwnerChange]:
    return [
        OwnerChange(
            opportunity_id=deal_id,
            title=str((deal.at_end or {}).get("title", "")),
            previous_owner_id=previous,
            owner_id=owner,
            at=at,
        )
        for deal_id, deal in sorted(deals.items())
        for previous, owner, at in deal.owners
    ]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
