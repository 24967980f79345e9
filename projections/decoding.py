"""Decoding stored notifications for the projections: what the ledger's mapper does, cheaper.

The mapper decodes each event's JSON with a Python ``object_hook`` called for every JSON
object. Projections decode every event of the log, so ``NotificationDecoder`` parses with
the plain C decoder and converts the transcoded values (``{"_type_": …, "_data_": …}``)
itself when they all sit at the top level of the event, as the ledger's events' do. Any
other event (nested transcoded values, a class version to upcast, a cipher or compressor)
goes through the mapper unchanged, so both paths give equal events.

The fast path also keeps the stored JSON (``RecordedEvent.state``), so the audit trail
reads an event's changes from it instead of encoding the event again; not for an event
with personal fields (``events.personal``), whose stored JSON holds their ciphertext.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, SafeUUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, Notification
from eventsourcing.utils import resolve_topic

from events.base import DateAsISO
from events.personal import PERSONAL_TYPE
from projections.base import RecordedEvent

NotificationRow = tuple[int, str, int, str, bytes]
"""A stored notification as the recorders' ``select_notification_rows`` return it:
position, originator id (text), originator version, topic, state."""

_TRANSCODED = b'"_type_"'
_JSON = json.JSONDecoder()


def parse_stored_json(text: str | bytes) -> Any:
    """``text`` parsed with orjson (about 1 µs an event faster than ``json`` for the
    ledger's events); as ``json`` parses it where orjson refuses (``NaN``, integers
    beyond 64 bits), so both give the same values."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _JSON.raw_decode(text if isinstance(text, str) else text.decode())[0]


_UTC_SECONDS = len("2026-01-01T00:00:00+00:00")
_UTC_MICROSECONDS = len("2026-01-01T00:00:00.000000+00:00")


class NotificationDecoder:
    """Turns ledger notifications into ``RecordedEvent``s, as ``mapper.to_domain_event``."""

    def __init__(self, mapper: Any) -> None:
        self._mapper = mapper
        transcodings = getattr(mapper.transcoder, "names", None)
        self._transcodings: dict[str, Callable[[Any], Any]] = {
            name: _DIRECT.get(type(transcoding), transcoding.decode)
            for name, transcoding in (transcodings or {}).items()
        }
        self._fast = isinstance(transcodings, dict) and not mapper.cipher and not mapper.compressor
        self._classes: dict[str, tuple[type, str] | None] = {}

    def __call__(self, notification: Any) -> RecordedEvent:
        if isinstance(notification.originator_id, UUID):
            row = (
                notification.id,
                str(notification.originator_id),
                notification.originator_version,
                notification.topic,
                bytes(notification.state),
            )
            return self.decode_rows([row])[0]
        return RecordedEvent.of(notification.id, self._mapper.to_domain_event(notification))

    def decode_rows(self, rows: Sequence[NotificationRow]) -> list[RecordedEvent]:
        """``rows`` decoded in order.

        One loop, no call per event beyond the JSON parser and the transcodings: this is
        the catch-up's hottest code (half of its reader's time went to calls, the
        ``UUID`` and a second text form of each id). PostgreSQL gives the originator id
        in the canonical form, which is the aggregate id as it is; its ``UUID`` is built
        without the checks of ``UUID(text)``."""
        classes, transcodings = self._classes, self._transcodings
        events: list[RecordedEvent] = []
        append = events.append
        for position, originator, version, topic, stored in rows:
            try:
                plain = classes[topic]
            except KeyError:
                plain = self._plain_class(topic)
            state = parse_stored_json(stored) if plain is not None else None
            if plain is None or type(state) is not dict or "class_version" in state:
                append(self._through_mapper(position, originator, version, topic, stored))
                continue
            timestamp = state.get("timestamp")
            transcoded = stored.count(_TRANSCODED)
            personal = False
            for key, value in state.items():
                if type(value) is dict and "_type_" in value:
                    decode = transcodings.get(value["_type_"])
                    if decode is None or len(value) != 2 or "_data_" not in value:
                        break
                    state[key] = decode(value["_data_"])
                    personal = personal or value["_type_"] == PERSONAL_TYPE
                    transcoded -= 1
            recorded_at = _recorded_at(timestamp) if type(timestamp) is dict else None
            if transcoded or recorded_at is None:
                append(self._through_mapper(position, originator, version, topic, stored))
                continue
            cls, type_name = plain
            state["originator_id"] = uuid = _uuid(originator)
            if len(originator) != _CANONICAL_UUID:  # SQLite stores the 32 hex digits
                originator = str(uuid)
            state["originator_version"] = version
            event: Any = _new(cls)
            _set(event, "__dict__", state)
            actor = state.get("actor", "")
            append(
                _tuple_new(  # RecordedEvent(...) without its Python-level __new__
                    RecordedEvent,
                    (
                        position,
                        event,
                        type_name,
                        originator,
                        recorded_at,
                        actor if type(actor) is str else str(actor),
                        None if personal else stored,  # never the ciphertext as changes
                    ),
                )
            )
        return events

    def _through_mapper(
        self, position: int, originator: str, version: int, topic: str, stored: bytes
    ) -> RecordedEvent:
        notification = Notification(
            id=position,
            originator_id=UUID(originator),
            originator_version=version,
            topic=topic,
            state=bytes(stored),
        )
        return RecordedEvent.of(position, self._mapper.to_domain_event(notification))

    def _plain_class(self, topic: str) -> tuple[type, str] | None:
        """The event class of ``topic`` and its name, if it can take the fast path: the
        mapper is plain (no cipher, no compressor) and the class needs no upcasting."""
        plain = None
        if self._fast:
            cls = resolve_topic(topic)
            if getattr(cls, "class_version", 1) == 1:
                plain = (cls, cls.__name__)
        self._classes[topic] = plain
        return plain


_CANONICAL_UUID = len("00000000-0000-0000-0000-000000000000")
_tuple_new = tuple.__new__
_DIRECT: dict[type, Callable[[Any], Any]] = {
    DatetimeAsISO: datetime.fromisoformat,
    DateAsISO: date.fromisoformat,
    DecimalAsStr: Decimal,
}
"""Transcodings whose ``decode`` is exactly a C constructor, called directly (a Python
frame less per value)."""
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown


def _uuid(text: str) -> UUID:
    """``UUID(text)`` for the recorders' id text (canonical, or 32 hex digits), without
    its checks: less than half the time."""
    uuid = _new(UUID)
    _set(uuid, "int", int(text.replace("-", ""), 16))
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def _recorded_at(timestamp: dict[str, Any]) -> str | None:
    """The time as ``iso_timestamp`` gives it, from the stored UTC text of a timestamp;
    None if it is not stored in UTC."""
    text = timestamp.get("_data_")
    if type(text) is str and text.endswith("+00:00"):
        if len(text) == _UTC_MICROSECONDS:
            return text[:26] + "Z"
        if len(text) == _UTC_SECONDS:
            return text[:19] + ".000000Z"
    return None
