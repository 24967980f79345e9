"""Reading an aggregate's history: every event, in order, with who, when and what changed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from aggregates.errors import NotFoundError
from commands.ledger import SalesLedger
from events.personal import PERSONAL_FIELDS

_ENVELOPE = {"originator_id", "originator_version", "timestamp", "actor", "originator_topic",
    "correlation_id", "causation_id"}


def event_changes(event: Any) -> dict[str, Any]:
    """The event's own fields, without the envelope."""
    return {k: v for k, v in vars(event).items() if k not in _ENVELOPE}


def _uuid(aggregate_id: str) -> UUID:
    try:
        return UUID(aggregate_id)
    except ValueError:
        raise NotFoundError(f"no aggregate {aggregate_id}") from None


def deal_history(
    ledger: SalesLedger,
    aggregate_id: str,
    as_of: datetime | None = None,
    events: Iterable[Any] | None = None,
) -> list[dict[str, Any]]:
    """``events`` (default: the aggregate's, read from the store) as history entries."""
    uid = _uuid(aggregate_id)
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    entries = []
    for event in ledger.stored_events(uid) if events is None else events:
        if as_of is not None and event.timestamp > as_of:
            break
        entries.append(
            {
                "version": event.originator_version,
                "timestamp": event.timestamp.isoformat(),
                "actor": getattr(event, "actor", ""),
                "event_type": type(event).__name__,
                "changes": event_changes(event),
                "correlation_id": getattr(event, "correlation_id", None),
                "causation_id": getattr(event, "causation_id", None),
            }
        )
    if not entries:
        raise NotFoundError(f"no history for {aggregate_id}" + (" at that time" if as_of else ""))
    return entries


def history_with_chain(
    ledger: SalesLedger, aggregate_id: str, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """``deal_history`` entries, each with ``chain``: "ok", or the kind of break found at
    that event when its hash chain is recomputed (see ``services.integrity``); "erased"
    for an intact event whose personal fields were erased (never for a broken one)."""
    from services.integrity import ChainVerifier

    uid = _uuid(aggregate_id)
    verifier = ChainVerifier(ledger.recorder)  # type: ignore[arg-type]
    # One read of the aggregate's rows, with their hashes, for the entries and the check.
    records = verifier.store.select_aggregate_chain(uid)
    events = [
        ledger.mapper.to_domain_event(
            StoredEvent(r.originator_id, r.version, r.topic, r.state)
        )
        for r in records
    ]
    entries = deal_history(ledger, aggregate_id, as_of=as_of, events=events)
    report = verifier.verify_aggregate(uid, records)
    erased = ledger.subject_keys.store.select_subject_key(aggregate_id) == b""
    return [
        {**entry, "chain": _chain_status(report.version_statuses, entry, erased)}
        for entry in entries
    ]


def _chain_status(statuses: dict[int, str], entry: dict[str, Any], erased: bool) -> str:
    status = statuses.get(entry["version"], "unchained event")
    if status == "ok" and erased and _has_personal_fields(entry["event_type"]):
        return "erased"
    return status


def _has_personal_fields(event_type: str) -> bool:
    return any(cls.__name__ == event_type for cls in PERSONAL_FIELDS)
