"""Decoding stored notifications for the projections: what the ledger's mapper does, cheaper.

The mapper decodes each event's JSON with a Python ``object_hook`` called for every JSON
object. Projections decode every event of the log, so ``NotificationDecoder`` parses with
the plain C decoder and converts the transcoded values (``{"_type_": …, "_data_": …}``)
itself when they all sit at the top level of the event, as the ledger's events' do. Any
other event (nested transcoded values, a class version to upcast, a cipher or compressor)
goes through the mapper unchanged, so both paths give equal events.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from eventsourcing.utils import resolve_topic

from projections.base import RecordedEvent

_TRANSCODED = b'"_type_"'
_JSON = json.JSONDecoder()
_UTC_SECONDS = len("2026-01-01T00:00:00+00:00")
_UTC_MICROSECONDS = len("2026-01-01T00:00:00.000000+00:00")


class NotificationDecoder:
    """Turns a ledger notification into a ``RecordedEvent``, as ``mapper.to_domain_event``."""

    def __init__(self, mapper: Any) -> None:
        self._mapper = mapper
        transcodings = getattr(mapper.transcoder, "names", None)
        self._transcodings: dict[str, Any] = transcodings or {}
        self._fast = isinstance(transcodings, dict) and not mapper.cipher and not mapper.compressor
        self._classes: dict[str, type | None] = {}

    def __call__(self, notification: Any) -> RecordedEvent:
        cls = self._plain_class(notification.topic) if self._fast else None
        if cls is not None and isinstance(notification.originator_id, UUID):
            state = _JSON.raw_decode(notification.state.decode())[0]
            timestamp = state.get("timestamp")
            if self._untranscode(state, notification.state.count(_TRANSCODED)):
                state["originator_id"] = notification.originator_id
                state["originator_version"] = notification.originator_version
                event: Any = object.__new__(cls)
                object.__setattr__(event, "__dict__", state)
                return RecordedEvent.of(notification.id, event, _utc_text(timestamp))
        event = self._mapper.to_domain_event(notification)
        return RecordedEvent.of(notification.id, event)

    def _plain_class(self, topic: str) -> type | None:
        """The event class of ``topic`` if it needs no upcasting (else None)."""
        try:
            return self._classes[topic]
        except KeyError:
            cls = resolve_topic(topic)
            plain = getattr(cls, "class_version", 1) == 1
            self._classes[topic] = cls if plain else None
            return self._classes[topic]

    def _untranscode(self, state: dict[str, Any], transcoded: int) -> bool:
        """Decode ``state``'s top-level transcoded values in place; False if there are
        others (nested ones, or a stored class version) and ``state`` must be discarded."""
        if "class_version" in state:
            return False
        for key, value in state.items():
            if type(value) is dict and len(value) == 2 and "_type_" in value and "_data_" in value:
                transcoding = self._transcodings.get(value["_type_"])
                if transcoding is None:
                    return False
                state[key] = transcoding.decode(value["_data_"])
                transcoded -= 1
        return transcoded == 0


def _utc_text(timestamp: Any) -> str | None:
    """A stored UTC ``datetime_iso`` value as ``iso_timestamp`` text, without parsing it."""
    if isinstance(timestamp, dict):
        text = timestamp.get("_data_")
        if isinstance(text, str) and text.endswith("+00:00"):
            if len(text) == _UTC_MICROSECONDS:
                return text[:26] + "Z"
            if len(text) == _UTC_SECONDS:
                return text[:19] + ".000000Z"
    return None
