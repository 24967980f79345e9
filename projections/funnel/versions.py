"""Each deal's funnel state through event time, so that the funnel as of a past moment is
read from an index instead of folded from the first event.

The as-of rule is the fold's (``projections/funnel/as_of.py``): a deal as of T is its
state after its funnel events up to (not including) its first event stamped later than
T. Event *k* therefore counts at T exactly when the latest stamp of events 1…k is ≤ T,
so each state of a deal holds over an interval of event time that starts at that
running maximum (``valid_from``) and ends where the next different state starts
(``valid_to``). States that hold over no time (two events with the same running
maximum) are never seen and never stored.

Where the states are kept:
- the deal's current state is its ``funnel_opportunities`` row, whose ``version_from``
  says since when it holds; ``events_until`` is the running maximum of its stamps;
- every earlier state that holds some time and counts in the funnel (open, nurturing or
  won; a lost deal counts nowhere) is one append-only row of ``funnel_deal_versions``.

An interval-stabbing query over ``[valid_from, valid_to)`` cannot be answered from one
ordered index without reading the intervals that ended before T. So each finished
version carries its *span class*: the least ``c`` with ``valid_to − valid_from ≤ 2^c``
microseconds. A version of class ``c`` alive at T started after ``T − 2^c``: one index
range per class on ``(span_class, valid_from)`` reads about twice the versions alive at
T or fewer (the shortest and the longest class excepted), wherever T falls in the log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from projections.base import as_decimal, create_table, write_rows
from projections.funnel.fold import funnel_status
from projections.store import Row, Transaction

CURRENT_VERSION_COLUMNS = ("events_until", "version_from")
"""The columns a deal's ``funnel_opportunities`` row adds for its as-of versions."""

VERSION_COLUMNS = (
    "opportunity_id",
    "valid_from",
    "valid_to",
    "span_class",
    "stage",
    "status",
    "amount",
    "owner_id",
    "region",
    "product",
    "source",
    "close_date",
)
"""A finished version: its interval, its funnel status, its value (the won amount of a
won deal) and what the filters read (``close_date``: the close date of a won deal, the
expected close of an open one)."""

SHORTEST_SPAN_CLASS = 30
"""Versions shorter than 2^30 µs (about 18 minutes) are classed together."""
LONGEST_SPAN_CLASS = 46
"""Versions longer than 2^46 µs (about 2.2 years) are classed together and read without a
lower bound on ``valid_from``: correct, only not narrowed."""


def create_version_table(tx: Transaction) -> None:
    """The finished versions' table (append-only: no key; its one index serves the query)."""
    create_table(
        tx,
        "funnel_deal_versions ("
        "opportunity_id TEXT NOT NULL, valid_from TEXT NOT NULL, valid_to TEXT NOT NULL, "
        "span_class INTEGER NOT NULL, stage INTEGER NOT NULL, status TEXT NOT NULL, "
        "amount NUMERIC NOT NULL, owner_id TEXT NOT NULL, region TEXT NOT NULL, "
        "product TEXT NOT NULL, source TEXT NOT NULL, close_date TEXT NOT NULL)",
    )


def version_state(row: Row) -> tuple[Any, ...]:
    """What of a deal an as-of funnel reads, in ``VERSION_COLUMNS`` order from ``stage``."""
    status = funnel_status(row)
    won = status == "won"
    return (
        int(row["stage"]),
        status,
        as_decimal(row["won_amount"] if won else row["amount"]),
        row["owner_id"],
        row["region"],
        row["product"],
        row["source"],
        row["closed_on"] if won else row["expected_close"],
    )


def span_class(valid_from: str, valid_to: str) -> int:
    """The least ``c`` (within the classes) with ``valid_to − valid_from ≤ 2^c`` µs."""
    span = datetime.fromisoformat(valid_to) - datetime.fromisoformat(valid_from)
    microseconds = span // timedelta(microseconds=1)
    return min(LONGEST_SPAN_CLASS, max(SHORTEST_SPAN_CLASS, (microseconds - 1).bit_length()))


class DealVersions:
    """The versions a transaction finishes, appended batch by batch like stage intervals."""

    def __init__(self) -> None:
        self.finished: list[tuple[Any, ...]] = []

    def record(self, before: Row | None, row: Row, at: str) -> None:
        """Give ``row`` (the deal after an event stamped ``at``, ``before`` it before) its
        version columns, and finish ``before``'s version if a new one starts later."""
        if before is None:
            row["events_until"] = row["version_from"] = at
            return
        seen = before["events_until"]
        valid_from = at if at > seen else seen
        row["events_until"] = valid_from
        started = before["version_from"]
        if valid_from == started:  # the state it replaces held over no time
            row["version_from"] = started
            return
        state = version_state(before)
        if state == version_state(row):
            row["version_from"] = started
            return
        row["version_from"] = valid_from
        if state[1] != "lost":
            self.finished.append(
                (
                    before["opportunity_id"],
                    started,
                    valid_from,
                    span_class(started, valid_from),
                    *state,
                )
            )

    def write(self, tx: Transaction) -> None:
        write_rows(tx, "funnel_deal_versions", VERSION_COLUMNS, self.finished)
        self.finished.clear()
