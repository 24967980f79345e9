"""Wires the ledger from settings: the one place that knows about concrete adapters."""

from __future__ import annotations

from commands.ledger import SalesLedger
from services.settings import Settings

EVENTS_CHANNEL = "salesledger_events"
"""The PostgreSQL NOTIFY channel the event store signals after appends (named after
the events table, ``{application name}_events``)."""


def build_ledger(settings: Settings | None = None) -> SalesLedger:
    """The application service on the configured event store."""
    settings = settings or Settings()
    return SalesLedger(env=settings.event_store_env())
