"""Wires the ledger from settings: the one place that knows about concrete adapters."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError

from commands.ledger import SalesLedger
from services.settings import Settings

EVENTS_CHANNEL = "salesledger_events"
"""The PostgreSQL NOTIFY channel the event store signals after appends (named after
the events table, ``{application name}_events``)."""

UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
)
"""The database away, or no connection free in this process's budget in time."""

log = logging.getLogger(__name__)

T = TypeVar("T")


def build_ledger(settings: Settings | None = None) -> SalesLedger:
    """The application service on the configured event store."""
    settings = settings or Settings()
    return SalesLedger(env=settings.event_store_env())


def until_reachable(
    make: Callable[[], T], what: str, *, pause: float = 0.5, max_pause: float = 10.0
) -> T:
    """``make()``, tried again (pauses doubling up to ``max_pause`` seconds) for as long
    as the database is unreachable or has no connection free: a service that starts
    before the database, or while it is full, waits for it instead of dying."""
    while True:
        try:
            return make()
        except UNREACHABLE_ERRORS as error:
            log.warning("%s is not reachable yet (%s); retrying in %.1f s", what, error, pause)
            time.sleep(pause)
            pause = min(pause * 2, max_pause)
