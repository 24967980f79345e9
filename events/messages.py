"""The wire format of published events: a JSON value with CloudEvents binary-mode headers.

Pure functions only (no Kafka, no database), shared by the relay that publishes and
the consumers that read. ``docs/kafka.md`` describes the format for outside consumers;
``schemas/events/`` holds a JSON Schema for every value.

- topic: ``{prefix}.{aggregate}`` (``sales.opportunity``), one per aggregate type;
- key: the aggregate id, so one deal's events stay in order in one partition;
- value: the event's fields as a JSON object (Decimal as string, date ISO-8601,
  datetime ISO-8601 in UTC, UUID as string); personal fields (``events.personal``) only
  encrypted, as ``{"subject": …, "ciphertext": …}`` (``ciphertext`` null: withheld);
- headers: ``ce_specversion``, ``ce_id`` (``{aggregate id}:{version}``, unique and
  stable, so a republished event is recognisable), ``ce_type``
  (``salesledger.{aggregate}.{Event}.v{schema version}``), ``ce_source``,
  ``ce_time``, ``ce_subject`` (aggregate id), ``ce_dataschema`` (the ``$id`` of the
  value's JSON Schema, ``urn:{ce_type}``; the API serves it at ``/schemas/{ce_type}``),
  ``content-type``, and the extensions ``ce_aggregateversion`` and ``ce_position``
  (global position in the event store);
- self-verifying extensions: ``ce_ledgerposition`` (the same position, under the name
  the ledger's transparency checks use), ``ce_eventhash`` (the event's chain hash, hex:
  the leaf of the ledger's Merkle tree), ``ce_storedtopic`` and ``ce_storedstate``
  (base64) — the stored bytes the hash covers, so a consumer recomputes the hash and the
  value from the message alone and checks them against a signed tree head published on
  ``{prefix}.checkpoints``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from events.personal import personal_fields_of, published_personal_value

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_NAMESPACE = "salesledger"
DEFAULT_SOURCE = "/salesledger"
AGGREGATE_TYPES = ("audit", "customer", "forecast", "opportunity", "organisation", "plan")
"""The aggregate types whose events are published, one topic each."""

STORAGE_ONLY_FIELDS = frozenset({"originator_topic"})
"""Event attributes that describe storage, not the fact; they are not published."""

Headers = list[tuple[str, bytes]]

LEDGER_POSITION_HEADER = "ce_ledgerposition"
CAUSALITY_HEADERS = {"ce_correlationid": "correlation_id", "ce_causationid": "causation_id"}
"""CloudEvents extensions carrying an event's correlation and causation ids, when it has
them (``events.base.caused_by``)."""
"""The event's global position in the ledger (one definition, for dedup and proofs)."""
EVENT_HASH_HEADER = "ce_eventhash"
STORED_TOPIC_HEADER = "ce_storedtopic"
STORED_STATE_HEADER = "ce_storedstate"
CHECKPOINT_TOPIC = "checkpoints"
"""Signed tree heads are published on ``{prefix}.checkpoints``."""


@dataclass(frozen=True)
class StoredForm:
    """An event as the store holds it: the bytes its chain hash covers, and that hash."""

    topic: str
    state: bytes
    event_hash: bytes


class MessageFormatError(ValueError):
    """A consumed message is not a ledger event in the documented format."""


@dataclass(frozen=True)
class EventMessage:
    """One event ready for the broker."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class ReceivedEvent:
    """A consumed message, decoded from its headers and JSON value."""

    event_id: str
    event_type: str
    aggregate_type: str
    event_name: str
    schema_version: int
    aggregate_id: str
    aggregate_version: int
    position: int
    time: str
    data: dict[str, Any]


def aggregate_type_of(event_class: type) -> str:
    """The aggregate an event class belongs to: the last part of its module's name
    (``events.opportunity`` → ``opportunity``)."""
    return event_class.__module__.rsplit(".", 1)[-1]


def schema_version_of(event_class: type) -> int:
    """The event class's version (``class_version``, 1 when not declared)."""
    return int(getattr(event_class, "class_version", 1))


def topic_name(prefix: str, aggregate_type: str) -> str:
    """The topic of an aggregate type's events: ``{prefix}.{aggregate_type}``."""
    return f"{prefix}.{aggregate_type}"


def event_type_name(aggregate_type: str, event_name: str, schema_version: int) -> str:
    """The CloudEvents ``type``: ``salesledger.opportunity.StageAdvanced.v1``."""
    return f"{TYPE_NAMESPACE}.{aggregate_type}.{event_name}.v{schema_version}"


def schema_id(ce_type: str) -> str:
    """The ``$id`` of the JSON Schema of ``ce_type``'s values (its ``dataschema``)."""
    return f"urn:{ce_type}"


def event_id(aggregate_id: str, aggregate_version: int) -> str:
    """The CloudEvents ``id``: unique per event, the same every time it is published."""
    return f"{aggregate_id}:{aggregate_version}"


def utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def to_json_value(value: Any) -> Any:
    """A JSON-ready copy of ``value``: Decimal → str, date/datetime → ISO, UUID → str."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [to_json_value(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def event_fields(event: Any) -> dict[str, Any]:
    """The event's published fields, in declaration order, as JSON-ready values."""
    if dataclasses.is_dataclass(event):
        names = [f.name for f in dataclasses.fields(event)]
    else:
        names = list(vars(event))
    return {
        name: to_json_value(getattr(event, name))
        for name in names
        if name not in STORAGE_ONLY_FIELDS
    }


def published_fields(event: Any, stored_state: bytes | None) -> dict[str, Any]:
    """The event's fields as published: personal fields (``events.personal``) as their
    encrypted form in ``stored_state`` (the event's stored bytes), or withheld without
    it; never in plain text."""
    fields = event_fields(event)
    personal = personal_fields_of(type(event))
    if personal:
        stored_values = json.loads(stored_state) if stored_state is not None else {}
        subject = str(event.originator_id)
        for name in personal:
            fields[name] = published_personal_value(
                subject, fields.get(name), stored_values.get(name)
            )
    return fields


def encode_event(
    event: Any,
    position: int,
    *,
    topic_prefix: str,
    source: str = DEFAULT_SOURCE,
    stored: StoredForm | None = None,
    stored_state: bytes | None = None,
) -> EventMessage:
    """The message that publishes ``event``, stored at global ``position`` (with its
    stored form, the self-verifying headers; its personal fields come from the stored
    form, or from ``stored_state``, the stored bytes alone)."""
    event_class = type(event)
    aggregate_type = aggregate_type_of(event_class)
    aggregate_id = str(event.originator_id)
    version = int(event.originator_version)
    value = json.dumps(
        published_fields(event, stored.state if stored is not None else stored_state),
        separators=(",", ":"),
        ensure_ascii=False,
    )
    ce_type = event_type_name(aggregate_type, event_class.__name__, schema_version_of(event_class))
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id(aggregate_id, version).encode()),
        ("ce_type", ce_type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", utc_iso(event.timestamp).encode()),
        ("ce_subject", aggregate_id.encode()),
        ("ce_dataschema", schema_id(ce_type).encode()),
        ("content-type", CONTENT_TYPE.encode()),
        ("ce_aggregateversion", str(version).encode()),
        ("ce_position", str(position).encode()),
        (LEDGER_POSITION_HEADER, str(position).encode()),
    ]
    headers += [
        (header, str(given).encode())
        for header, name in CAUSALITY_HEADERS.items()
        if (given := getattr(event, name, None)) is not None
    ]
    if stored is not None:
        headers += [
            (EVENT_HASH_HEADER, stored.event_hash.hex().encode()),
            (STORED_TOPIC_HEADER, stored.topic.encode()),
            (STORED_STATE_HEADER, base64.b64encode(stored.state)),
        ]
    return EventMessage(
        topic=topic_name(topic_prefix, aggregate_type),
        key=aggregate_id.encode(),
        value=value.encode(),
        headers=headers,
    )


def decode_message(
    headers: Sequence[tuple[str, bytes | None]], value: bytes | None
) -> ReceivedEvent:
    """Read a consumed message; raises ``MessageFormatError`` if it is not a ledger event."""
    attributes = {name: (raw or b"").decode() for name, raw in headers}
    try:
        ce_type = attributes["ce_type"]
        namespace, aggregate_type, event_name, version_tag = ce_type.split(".")
        if namespace != TYPE_NAMESPACE or not version_tag.startswith("v"):
            raise ValueError(ce_type)
        data = json.loads(value or b"")
        if not isinstance(data, dict):
            raise ValueError("the value is not a JSON object")
        return ReceivedEvent(
            event_id=attributes["ce_id"],
            event_type=ce_type,
            aggregate_type=aggregate_type,
            event_name=event_name,
            schema_version=int(version_tag[1:]),
            aggregate_id=attributes["ce_subject"],
            aggregate_version=int(attributes["ce_aggregateversion"]),
            position=int(attributes["ce_position"]),
            time=attributes["ce_time"],
            data=data,
        )
    except (KeyError, ValueError) as error:
        raise MessageFormatError(f"not a ledger event: {error}") from None
