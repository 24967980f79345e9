"""Base classes shared by every event of the ledger."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from functools import singledispatchmethod
from typing import Any, dataclass_transform

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Transcoding

_recording_time: ContextVar[datetime | None] = ContextVar("recording_time", default=None)


@contextmanager
def recorded_at(moment: datetime) -> Iterator[None]:
    """Stamp events triggered in this block with ``moment`` instead of now.

    For importing history and simulating it (the demo); the API never uses it.
    """
    token = _recording_time.set(moment)
    try:
        yield
    finally:
        _recording_time.reset(token)


_causality: ContextVar[tuple[str, str] | None] = ContextVar("causality", default=None)

CAUSALITY_FIELDS = ("correlation_id", "causation_id")
"""Recorded on an event triggered inside ``caused_by``: the business transaction or trace
it belongs to, and the request (or command) that caused it. Metadata beside the event's
own fields: stored and hashed with them, published as CloudEvents extensions."""


@contextmanager
def caused_by(correlation_id: str, causation_id: str) -> Iterator[None]:
    """Record ``correlation_id`` and ``causation_id`` on every event triggered in this
    block (the API sets them for each request)."""
    token = _causality.set((correlation_id, causation_id))
    try:
        yield
    finally:
        _causality.reset(token)


def recording_now() -> datetime:
    """The moment events triggered now are stamped with (see ``recorded_at``)."""
    moment = _recording_time.get()
    return moment if moment is not None else datetime.now(UTC)


@dataclass_transform(frozen_default=True)
class _Stamped:
    """Stamps events with the recording time in force (see ``recorded_at``); for type
    checkers, marks every ledger event class as the frozen dataclass it is at run time."""

    @classmethod
    def create_timestamp(cls) -> datetime:
        moment = _recording_time.get()
        return moment if moment is not None else Aggregate.Event.create_timestamp()

    def __post_init__(self) -> None:
        causality = _causality.get()
        if causality is not None:
            object.__setattr__(self, CAUSALITY_FIELDS[0], causality[0])
            object.__setattr__(self, CAUSALITY_FIELDS[1], causality[1])


_handlers: dict[tuple[type, type], Callable[[Any, Any], None]] = {}


def evolve(aggregate: Any, event: Any) -> None:
    """Apply ``event`` to ``aggregate`` with the aggregate's ``when`` handler for it.

    ``when`` is a ``functools.singledispatchmethod``; on Python 3.11 every attribute
    access to one builds a new wrapper (~6 µs), so the handler found for each pair of
    classes is kept.
    """
    key = (type(aggregate), type(event))
    handler = _handlers.get(key)
    if handler is None:
        when = inspect.getattr_static(type(aggregate), "when")
        if isinstance(when, singledispatchmethod):
            handler = when.dispatcher.dispatch(type(event))
        else:
            handler = type(aggregate).when
        _handlers[key] = handler
    handler(aggregate, event)


class LedgerEvent(_Stamped, Aggregate.Event):
    """A fact about an aggregate, recorded with the person who caused it."""

    actor: str

    def apply(self, aggregate: Any) -> None:
        evolve(aggregate, self)


class LedgerCreated(_Stamped, Aggregate.Created):
    """The first fact about an aggregate, recorded with the person who caused it."""

    actor: str

    def apply(self, aggregate: Any) -> None:
        evolve(aggregate, self)


class DateAsISO(Transcoding):
    """Stores ``datetime.date`` values as ISO-8601 strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)
