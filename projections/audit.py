"""The audit trail: every event of every aggregate, in order, with who, when and what changed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from pydantic import BaseModel, Field

from events.base import DateAsISO
from projections.base import Projection, RecordedEvent, create_table, iso_timestamp, write_rows
from projections.decoding import NotificationDecoder, NotificationRow
from projections.store import ReadStore, Transaction, copy_escaped

AUDIT_COLUMNS = ("position", "actor", "recorded_at", "recorded_day")
"""What the audit trail's own rows hold: the index to the ledger's events by actor and by
time. What each event changed is read from the event itself (see ``query_audit_trail``)."""
_ENVELOPE = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "originator_topic",
     "correlation_id", "causation_id"}
)
_CHANGES_AS_JSON = json.JSONEncoder(default=str, sort_keys=True)
_STORED_STATE = JSONTranscoder()
for _transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
    _STORED_STATE.register(_transcoding)


def event_changes(event: Any) -> dict[str, Any]:
    """The event's own fields, without the envelope."""
    return {k: v for k, v in vars(event).items() if k not in _ENVELOPE}


def stored_changes(changes: str | bytes) -> dict[str, Any]:
    """An event's changed fields as JSON-ready values, from JSON text.

    The text is either the event's stored JSON as the ledger wrote it (envelope and
    transcoded values included) or, for an event that needed the mapper (an upcast, a
    cipher), its fields encoded by ``event_changes``. Both read as the event's own fields,
    values as ``str`` gives them.
    """
    fields = _STORED_STATE.decode(changes if isinstance(changes, bytes) else changes.encode())
    own = {k: v for k, v in fields.items() if k not in _ENVELOPE}
    result: dict[str, Any] = json.loads(_CHANGES_AS_JSON.encode(own))
    return result


def _aggregate_type(event: Any) -> str:
    return str(type(event).__module__).rsplit(".", 1)[-1]


class AuditTrailProjection(Projection):
    """One narrow row per event: its position, who caused it and when, indexed per actor
    and per day. The events themselves stay where they are, in the ledger's store, and
    are read from there by position (``query_audit_trail``), so that the trail holds no
    second copy of them to keep in step. (Rows holding the event's type, aggregate and
    stored JSON, with an aggregate index and a time index, cost the server about three
    times the CPU while catching up; measured in ``docs/projections.md``.)

    The time index is on the day and the position, not on the exact time: events arrive
    roughly in time order, so each day's entries are appended at that day's end of the
    index, where an index on the exact time inserts at random places when history is
    imported or back-dated. Range queries narrow by day, then by the exact time.
    """

    name = "audit"
    tables = ("audit_trail",)
    indexes = {
        "audit_trail_actor": "audit_trail (actor, position)",
        "audit_trail_day": "audit_trail (recorded_day, position)",
    }

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "audit_trail (position BIGINT PRIMARY KEY, actor TEXT NOT NULL, "
            "recorded_at TEXT NOT NULL, recorded_day TEXT NOT NULL)",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        if tx.dialect == "postgres":
            # The rows as COPY text at once: a third of the CPU of formatting them row by
            # row (positions are integers, times ISO text, only actors need escaping).
            actors: dict[str, str] = {}
            lines = []
            for e in events:
                actor = actors.get(e.actor)
                if actor is None:
                    actor = actors[e.actor] = copy_escaped(e.actor)
                at = e.recorded_at
                lines.append(f"{e.position}\t{actor}\t{at}\t{at[:10]}\n")
            tx.copy_text("audit_trail", AUDIT_COLUMNS, "".join(lines))
            return
        rows = [(e.position, e.actor, e.recorded_at, e.recorded_at[:10]) for e in events]
        write_rows(tx, "audit_trail", AUDIT_COLUMNS, rows)


class AuditEntry(BaseModel):
    """One recorded fact: which aggregate, which event, who, when, and what changed."""

    position: int = Field(examples=[1042])
    aggregate_id: str = Field(examples=["5b0c6c1e-54f8-4f57-9e4f-7a0d2f1b8c11"])
    aggregate_type: str = Field(examples=["opportunity"])
    version: int = Field(examples=[4])
    event_type: str = Field(examples=["StageAdvanced"])
    actor: str = Field(examples=["alice"])
    recorded_at: str = Field(examples=["2026-03-31T09:15:00.000000Z"])
    changes: dict[str, Any] = Field(examples=[{"from_stage": 2, "to_stage": 3, "reason": None}])


class AuditPage(BaseModel):
    """A page of the audit trail in position order; pass ``next_after`` as ``after``."""

    items: list[AuditEntry]
    next_after: int | None


def query_audit_trail(
    database: ReadStore,
    ledger: Any,
    *,
    aggregate_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    limit: int = 100,
) -> AuditPage:
    """Entries after position ``after`` matching every given criterion, oldest first.

    With ``aggregate_id`` the entries are that aggregate's events in the ledger's store
    (its whole history, filtered here by the other criteria); otherwise the positions come
    from the projected trail and the events from the store at those positions.
    """
    if aggregate_id is not None:
        return _aggregate_entries(ledger, aggregate_id, actor, since, until, after, limit)
    conditions = ["position > %s"]
    params: list[Any] = [after]
    if actor is not None:
        conditions.append("actor = %s")
        params.append(actor)
    if since is not None:
        conditions.append("recorded_day >= %s AND recorded_at >= %s")
        params.extend([iso_timestamp(since)[:10], iso_timestamp(since)])
    if until is not None:
        conditions.append("recorded_day <= %s AND recorded_at <= %s")
        params.extend([iso_timestamp(until)[:10], iso_timestamp(until)])
    with database.transaction() as tx:
        if tx.dialect == "postgres":
            # A generic plan (chosen once the statement is prepared) cannot tell one day
            # from all time, and walked the trail in position order instead of the index.
            tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = tx.execute(
            f"SELECT position FROM audit_trail WHERE {' AND '.join(conditions)} "
            "ORDER BY position LIMIT %s",
            [*params, limit + 1],
        )
    positions = [int(row["position"]) for row in rows]
    events = _decoded(ledger, ledger.recorder.select_notification_rows_at(positions[:limit]))
    next_after = positions[limit - 1] if len(positions) > limit else None
    return AuditPage(items=[_entry(e) for e in events], next_after=next_after)


def _aggregate_entries(
    ledger: Any,
    aggregate_id: str,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
    after: int,
    limit: int,
) -> AuditPage:
    try:
        originator_id = UUID(aggregate_id)
    except ValueError:
        return AuditPage(items=[], next_after=None)
    low = iso_timestamp(since) if since is not None else ""
    high = iso_timestamp(until) if until is not None else "~"
    records = [
        (r.position, str(r.originator_id), r.version, r.topic, r.state)
        for r in ledger.recorder.select_aggregate_chain(originator_id)
        if r.position > after
    ]
    matching = [
        e
        for e in _decoded(ledger, records)
        if (actor is None or e.actor == actor) and low <= e.recorded_at <= high
    ]
    items = [_entry(e) for e in matching[:limit]]
    return AuditPage(items=items, next_after=items[-1].position if len(matching) > limit else None)


def _decoded(ledger: Any, rows: Sequence[NotificationRow]) -> list[RecordedEvent]:
    return NotificationDecoder(ledger.mapper).decode_rows(rows)


def _entry(recorded: RecordedEvent) -> AuditEntry:
    event = recorded.event
    stored = recorded.state or _CHANGES_AS_JSON.encode(event_changes(event))
    return AuditEntry(
        position=recorded.position,
        aggregate_id=recorded.aggregate_id,
        aggregate_type=_aggregate_type(event),
        version=event.originator_version,
        event_type=recorded.type_name,
        actor=recorded.actor,
        recorded_at=recorded.recorded_at,
        changes=stored_changes(stored),
    )
