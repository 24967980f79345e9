"""The audit trail: every event of every aggregate, in order, with who, when and what changed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from pydantic import BaseModel, Field

from events.base import DateAsISO
from projections.base import Projection, RecordedEvent, create_table, iso_timestamp, write_rows
from services.database import Database, Transaction

AUDIT_COLUMNS = (
    "position",
    "aggregate_id",
    "aggregate_type",
    "version",
    "event_type",
    "actor",
    "recorded_at",
    "changes",
)
_ENVELOPE = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "originator_topic"}
)
_CHANGES_AS_JSON = json.JSONEncoder(default=str, sort_keys=True)
_STORED_STATE = JSONTranscoder()
for _transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
    _STORED_STATE.register(_transcoding)


def event_changes(event: Any) -> dict[str, Any]:
    """The event's own fields, without the envelope."""
    return {k: v for k, v in vars(event).items() if k not in _ENVELOPE}


def stored_changes(changes: str) -> dict[str, Any]:
    """An ``audit_trail.changes`` value as JSON-ready fields.

    The column holds either the event's stored JSON as the ledger wrote it (envelope and
    transcoded values included: written as it is, nothing encoded per event) or, for an
    event that needed the mapper (an upcast, a cipher), its fields already encoded by
    ``event_changes``. Both read as the event's own fields, values as ``str`` gives them.
    """
    fields = _STORED_STATE.decode(changes.encode())
    own = {k: v for k, v in fields.items() if k not in _ENVELOPE}
    result: dict[str, Any] = json.loads(_CHANGES_AS_JSON.encode(own))
    return result


def _aggregate_type(event: Any) -> str:
    return str(type(event).__module__).rsplit(".", 1)[-1]


class AuditTrailProjection(Projection):
    """One row per event, indexed per aggregate, per actor and by time."""

    name = "audit"
    tables = ("audit_trail",)
    indexes = {
        "audit_trail_aggregate": "audit_trail (aggregate_id, position)",
        "audit_trail_actor": "audit_trail (actor, position)",
        "audit_trail_time": "audit_trail (recorded_at, position)",
    }

    def create_tables(self, tx: Transaction) -> None:
        create_table(
            tx,
            "audit_trail ("
            "position BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL, "
            "aggregate_type TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL, "
            "actor TEXT NOT NULL, recorded_at TEXT NOT NULL, changes TEXT NOT NULL)",
        )

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        types: dict[type, str] = {}
        rows = []
        for e in events:
            event = e.event
            kind = type(event)
            aggregate_type = types.get(kind)
            if aggregate_type is None:
                aggregate_type = types[kind] = _aggregate_type(event)
            changes = e.state
            if changes is None:
                changes = _CHANGES_AS_JSON.encode(event_changes(event))
            rows.append(
                (
                    e.position,
                    e.aggregate_id,
                    aggregate_type,
                    event.originator_version,
                    e.type_name,
                    e.actor,
                    e.recorded_at,
                    changes,
                )
            )
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
    database: Database,
    *,
    aggregate_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    limit: int = 100,
) -> AuditPage:
    """Entries after position ``after`` matching every given criterion, oldest first."""
    conditions = ["position > %s"]
    params: list[Any] = [after]
    if aggregate_id is not None:
        conditions.append("aggregate_id = %s")
        params.append(aggregate_id)
    if actor is not None:
        conditions.append("actor = %s")
        params.append(actor)
    if since is not None:
        conditions.append("recorded_at >= %s")
        params.append(iso_timestamp(since))
    if until is not None:
        conditions.append("recorded_at <= %s")
        params.append(iso_timestamp(until))
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_trail "
            f"WHERE {' AND '.join(conditions)} ORDER BY position LIMIT %s",
            [*params, limit + 1],
        )
    items = [
        AuditEntry(**{**row, "changes": stored_changes(row["changes"])}) for row in rows[:limit]
    ]
    next_after = items[-1].position if len(rows) > limit else None
    return AuditPage(items=items, next_after=next_after)
