"""Reading the ledger's deal events in position order, decoded once, for the analytics."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from projections.base import RecordedEvent
from projections.decoding import NotificationDecoder
from projections.funnel import FUNNEL_TOPICS

READ_BATCH = 5000


def recorded_events(
    ledger: Any, topics: Sequence[str] = FUNNEL_TOPICS, batch_size: int = READ_BATCH
) -> Iterator[RecordedEvent]:
    """Every event of ``topics`` in the ledger, in position order."""
    decode = NotificationDecoder(ledger.mapper)
    recorder = ledger.recorder
    start = 0
    if not hasattr(recorder, "select_topic_rows"):
        while True:
            notifications = recorder.select_notifications(
                start, batch_size, topics=list(topics), inclusive_of_start=False
            )
            if not notifications:
                return
            yield from (decode(n) for n in notifications)
            start = notifications[-1].id
    while True:
        rows, end = recorder.select_topic_rows(start, batch_size, list(topics))
        yield from decode.decode_rows(rows)
        if end == start:
            return
        start = end
