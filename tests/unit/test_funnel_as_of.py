"""The funnel as of a moment, read from the deals' versions, equals the fold of the events
up to that moment (``fold_as_of``, the rule's reference): for any histories, stamps out
of ledger order, batches and transactions, moments and filters."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

from hypothesis import given, settings
from hypothesis import strategies as st

from events import opportunity as events
from projections.base import RecordedEvent
from projections.funnel import (
    FunnelFilter,
    FunnelProjection,
    fold_as_of,
    funnel_from_deals,
    query_funnel_as_of,
)
from projections.funnel.as_of import RECENT_CHANGES
from services.database import Database
from services.settings import Settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNERS = ("rep", "rep2", "rep3")
REGIONS = ("east", "west")
CLOSES = (date(2026, 3, 31), date(2026, 5, 15), date(2026, 6, 30))


def _fields(kind: str, value: int) -> tuple[type[Any], dict[str, Any]]:
    """An event of ``kind`` with ``value`` choosing its stage, owner, amount or date
    (amounts in quarters, which SQLite's floating-point sums add exactly)."""
    close = CLOSES[value % len(CLOSES)]
    changes: dict[str, Callable[[], tuple[type[Any], dict[str, Any]]]] = {
        "qualify": lambda: (events.OpportunityQualified, {"criteria": {}}),
        "disqualify": lambda: (
            events.OpportunityDisqualified,
            {"criteria": {}, "reason": "later"},
        ),
        "advance": lambda: (
            events.StageAdvanced,
            {"from_stage": 1, "to_stage": 2 + value % 6, "reason": None},
        ),
        "owner": lambda: (
            events.PrimaryOwnerChanged,
            {"owner_id": OWNERS[value % 3], "previous_owner_id": "x", "reason": "move"},
        ),
        "amount": lambda: (
            events.AmountRevised,
            {
                "amount": Decimal(100 * (1 + value % 4)) + Decimal(value % 4) / 4,
                "previous_amount": Decimal(0),
                "reason": "r",
            },
        ),
        "close": lambda: (
            events.CloseDateRevised,
            {"expected_close": close, "previous_expected_close": close, "reason": "r"},
        ),
        "won": lambda: (events.OpportunityWon, {"amount": Decimal(50 * value), "closed_on": close}),
        "lost": lambda: (
            events.OpportunityLost,
            {"reason": "r", "competitor": None, "closed_on": close},
        ),
        "reopen": lambda: (events.OpportunityReopened, {"reason": "r", "stage": 1 + value % 7}),
    }
    return changes[kind]()


KINDS = ("qualify", "disqualify", "advance", "owner", "amount", "close", "won", "lost", "reopen")

step = st.tuples(st.integers(0, 3), st.sampled_from(KINDS), st.integers(0, 11), st.integers(0, 40))
"""(deal, kind of event, a value for its fields, its stamp in hours after T0)."""


def _history(steps: list[tuple[int, str, int, int]]) -> list[RecordedEvent]:
    """Four deals opened at T0 + their index hours, then ``steps`` in ledger order."""
    versions: dict[int, int] = {}
    recorded: list[RecordedEvent] = []

    def add(deal: int, cls: type[Any], hours: int, **fields: Any) -> None:
        versions[deal] = versions.get(deal, 0) + 1
        event = cls(
            originator_id=uuid5(UUID(int=0), str(deal)),
            originator_version=versions[deal],
            timestamp=T0 + timedelta(hours=hours),
            actor="rep",
            **fields,
        )
        recorded.append(RecordedEvent.of(len(recorded) + 1, event))

    for deal in range(4):
        add(
            deal,
            events.OpportunityOpened,
            deal,
            originator_topic="o",
            customer_id="c",
            owner_id=OWNERS[deal % 3],
            title="deal",
            source="web",
            amount=Decimal(1000 + deal),
            expected_close=CLOSES[deal % 3],
            product="arm",
            region=REGIONS[deal % 2],
        )
    for deal, kind, value, hours in steps:
        cls, fields = _fields(kind, value)
        add(deal, cls, hours, **fields)
    return recorded


selections = st.builds(
    FunnelFilter,
    owner_ids=st.none() | st.sets(st.sampled_from(OWNERS), max_size=2),
    region=st.none() | st.sampled_from(REGIONS),
    close_from=st.none() | st.sampled_from(CLOSES),
    close_to=st.none() | st.sampled_from(CLOSES),
)


as_of_cases = given(
    steps=st.lists(step, max_size=40),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    moments=st.lists(st.integers(-2 * 60, 45 * 60), max_size=4),
    selection=selections,
)
"""Histories, where the projection's batches end, moments and selections: for
``check_as_of_equals_fold``, on SQLite here and on PostgreSQL in the integration tests."""


@settings(max_examples=150, deadline=None)
@as_of_cases
def test_the_funnel_as_of_any_moment_equals_the_fold_of_the_events(
    steps: list[tuple[int, str, int, int]],
    cuts: list[int],
    moments: list[int],
    selection: FunnelFilter,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        database = Database(Settings(store="sqlite", sqlite_path=str(Path(directory) / "r.db")))
        check_as_of_equals_fold(database, steps, cuts, moments, selection)
        database.close()


def check_as_of_equals_fold(
    database: Database,
    steps: list[tuple[int, str, int, int]],
    cuts: list[int],
    moments: list[int],
    selection: FunnelFilter,
) -> None:
    """Project the history of ``steps`` afresh (``cuts`` split it into batches and
    transactions), then ask at every event's stamp (where versions start and end) and at
    ``moments`` (minutes from T0)."""
    history = _history(steps)
    _project(database, history, sorted(set(cuts)))
    stamps = [r.event.timestamp for r in history]
    for moment in sorted(set(stamps)) + [T0 + timedelta(minutes=m) for m in moments]:
        expected = funnel_from_deals(fold_as_of(history, moment).values(), selection, moment)
        # The current states read as the deals begun by then (0) and as the live totals
        # less the deals changed since (the default, for owner-only selections).
        for recent_changes in (0, RECENT_CHANGES):
            answer = query_funnel_as_of(database, moment, selection, recent_changes=recent_changes)
            assert answer == expected, (moment, recent_changes)


def _project(database: Database, history: list[RecordedEvent], cuts: list[int]) -> None:
    """Batches end at ``cuts``; the transaction with them at odd ones (as the runner
    applies several batches in one transaction and flushes the deals once)."""
    projection = FunnelProjection()
    with database.transaction() as tx:
        projection.drop_tables(tx)
        projection.create_tables(tx)
        projection.create_indexes(tx)
    inside = [c for c in cuts if 0 < c < len(history)]
    bounds = [0, *inside, len(history)]
    transactions: list[list[list[RecordedEvent]]] = [[]]
    for start, end in zip(bounds, bounds[1:], strict=False):
        transactions[-1].append(history[start:end])
        if end % 2:
            transactions.append([])
    for batches in transactions:
        with database.transaction() as tx:
            pending = projection.begin()
            for batch in batches:
                projection.apply(tx, pending, batch)
            projection.flush(tx, pending)
