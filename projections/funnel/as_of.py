"""The funnel as it was at a past moment: read from the deals' versions, or folded from
the events alone (the rule's reference, and a check on the versions).

The rule: an opportunity as of T is its state after its funnel events in ledger order
up to its first event stamped later than T, as ``SalesLedger.load_as_of`` loads an
aggregate. ``versions.py`` keeps each state with the interval of event time in which
this rule sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregates.funnel import WON_STAGE
from projections.base import RecordedEvent, as_decimal, iso_timestamp
from projections.funnel.filters import FunnelFilter
from projections.funnel.fold import FUNNEL_TOPICS, evolve_deal
from projections.funnel.queries import (
    Funnel,
    Probabilities,
    StageTotals,
    add_total,
    funnel_from_deals,
    funnel_from_totals,
)
from projections.funnel.versions import LONGEST_SPAN_CLASS, SHORTEST_SPAN_CLASS
from projections.store import ReadStore, Row

RECENT_CHANGES = 2_000
"""Up to this many deals changed after the moment, their current states are read as the
live totals less those deals (a moment near now reads few rows); beyond it, as the deals
whose current state had begun by then (a moment long ago reads few rows)."""


def query_funnel_as_of(
    database: ReadStore,
    moment: datetime,
    selection: FunnelFilter = FunnelFilter(),
    probabilities: Probabilities | None = None,
    *,
    recent_changes: int = RECENT_CHANGES,
) -> Funnel:
    """The funnel as it was at ``moment`` (weighted with the probabilities in force then,
    when given), from the funnel projection: the deals whose current state had begun by
    then, and the earlier states alive then.

    One statement, so that it reads one snapshot: a batch committed between two reads
    could move a state from a deal's row to its finished versions and count it twice.
    (The count of recent changes before it only chooses how the current states are read.)
    """
    moment = _in_utc(moment)
    with database.transaction() as tx:
        if tx.dialect == "postgres":
            # The moment decides how much of each index range is read: plan for each.
            tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        from_totals = selection.by_owners_only() and (
            _changed_since(tx, moment, selection, recent_changes) < recent_changes
        )
        parts, params = _alive_at(moment, selection, from_totals)
        rows = tx.execute(
            "SELECT stage, status, SUM(n) AS n, SUM(amount) AS amount FROM ("
            + " UNION ALL ".join(parts)
            + ") AS alive GROUP BY stage, status",
            params,
        )
    totals: StageTotals = {}
    for row in rows:
        n, amount = int(row["n"]), as_decimal(row["amount"])
        if n or amount:
            stage = WON_STAGE if row["status"] == "won" else int(row["stage"])
            add_total(totals, stage, row["status"], n, amount)
    return funnel_from_totals(totals, moment, probabilities)


def _changed_since(tx: Any, moment: datetime, selection: FunnelFilter, limit: int) -> int:
    """How many of the deals ``selection`` counts changed after ``moment`` (up to
    ``limit``: past it, the exact number does not matter)."""
    if limit <= 0:
        return 0
    conditions, params = selection.sql()
    rows = tx.execute(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM funnel_opportunities "
        f"WHERE status IN ('open', 'won') AND version_from > %s{conditions} LIMIT %s) "
        "AS recent",
        [iso_timestamp(moment), *params, limit],
    )
    return int(rows[0]["n"])


def _alive_at(
    moment: datetime, selection: FunnelFilter, from_totals: bool
) -> tuple[list[str], list[Any]]:
    """The selects (stage, funnel status, deals, amount) of the deal states alive at
    ``moment`` that ``selection`` counts, and their parameters: the current states of
    open and of won deals, then the finished versions, one index range per span class (see
    ``versions.py``)."""
    parts, values = (_current_from_totals if from_totals else _current_begun)(moment, selection)
    at = iso_timestamp(moment)
    conditions, params = selection.sql(close_column="close_date")
    for span in range(SHORTEST_SPAN_CLASS, LONGEST_SPAN_CLASS + 1):
        lowest = _started_after(moment, span)
        after = "" if lowest is None else " AND valid_from > %s"
        parts.append(
            "SELECT stage, status, 1 AS n, amount FROM funnel_deal_versions "
            f"WHERE span_class = %s{after} AND valid_from <= %s AND valid_to > %s{conditions}"
        )
        values += [span, *([] if lowest is None else [lowest]), at, at, *params]
    return parts, values


_OPEN_STATUS = "CASE WHEN qualification = 'nurturing' THEN 'nurturing' ELSE 'open' END"


def _current_begun(moment: datetime, selection: FunnelFilter) -> tuple[list[str], list[Any]]:
    """The current states of the open and won deals that had begun by ``moment``."""
    at = iso_timestamp(moment)
    conditions, params = selection.sql()
    won_conditions, won_params = selection.sql(close_column="closed_on")
    parts = [
        f"SELECT stage, {_OPEN_STATUS} AS status, 1 AS n, amount FROM funnel_opportunities "
        f"WHERE status = 'open' AND version_from <= %s{conditions}",
        "SELECT stage, status, 1 AS n, won_amount AS amount FROM funnel_opportunities "
        f"WHERE status = 'won' AND version_from <= %s{won_conditions}",
    ]
    return parts, [at, *params, at, *won_params]


def _current_from_totals(moment: datetime, selection: FunnelFilter) -> tuple[list[str], list[Any]]:
    """The same current states as ``_current_begun``, as the live per-owner totals less
    the deals whose current state began after ``moment`` (``selection`` filters by owners
    only, as the totals are kept)."""
    at = iso_timestamp(moment)
    conditions, params = selection.sql()
    parts = [
        "SELECT stage, status, count AS n, amount FROM funnel_stage_totals "
        f"WHERE status IN ('open', 'nurturing', 'won'){conditions}",
        f"SELECT stage, {_OPEN_STATUS} AS status, -1 AS n, -amount AS amount "
        f"FROM funnel_opportunities WHERE status = 'open' AND version_from > %s{conditions}",
        "SELECT stage, status, -1 AS n, -won_amount AS amount FROM funnel_opportunities "
        f"WHERE status = 'won' AND version_from > %s{conditions}",
    ]
    return parts, [*params, at, *params, at, *params]


def _started_after(moment: datetime, span: int) -> str | None:
    """The earliest start (exclusive) of a version of class ``span`` alive at ``moment``;
    None for the longest class (any start) or before the calendar's start."""
    if span == LONGEST_SPAN_CLASS:
        return None
    try:
        return iso_timestamp(moment - timedelta(microseconds=2**span))
    except OverflowError:
        return None


def fold_as_of(events: Iterable[RecordedEvent], moment: datetime) -> dict[str, Row]:
    """Every opportunity's funnel row as it was at ``moment``, folded from ``events`` (its
    funnel events in ledger order): an opportunity's events from its first one stamped
    later than ``moment`` on are ignored."""
    moment = _in_utc(moment)
    deals: dict[str, Row] = {}
    cut: set[str] = set()
    for recorded in events:
        key = recorded.aggregate_id
        if key in cut:
            continue
        if recorded.event.timestamp > moment:
            cut.add(key)
            continue
        row, _ = evolve_deal(deals.get(key), recorded)
        if row is not None:
            deals[key] = row
    return deals


def fold_deals_as_of(ledger: Any, moment: datetime, batch_size: int = 5000) -> dict[str, Row]:
    """``fold_as_of`` over the ledger's funnel events, read from the first."""
    return fold_as_of(_funnel_events(ledger, batch_size), moment)


def fold_funnel_as_of(
    ledger: Any,
    moment: datetime,
    selection: FunnelFilter = FunnelFilter(),
    probabilities: Probabilities | None = None,
) -> Funnel:
    """The funnel as it was at ``moment`` from the events alone (no projection needed; a
    fold from the first event, so its time grows with the ledger)."""
    deals = fold_deals_as_of(ledger, moment).values()
    return funnel_from_deals(deals, selection, _in_utc(moment), probabilities)


def _funnel_events(ledger: Any, batch_size: int) -> Iterator[RecordedEvent]:
    start: int | None = None
    while notifications := ledger.recorder.select_notifications(
        start, batch_size, topics=FUNNEL_TOPICS, inclusive_of_start=False
    ):
        for notification in notifications:
            event = ledger.mapper.to_domain_event(notification)
            yield RecordedEvent.of(notification.id, event)
        start = notifications[-1].id


def _in_utc(moment: datetime) -> datetime:
    """A zone-less moment is UTC, as the fold has always read it."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
