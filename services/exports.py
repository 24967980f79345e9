"""Recording bulk reads and exports as events, with who and what."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from commands.ledger import SalesLedger


def record_export(ledger: SalesLedger, actor: str, what: str, parameters: dict[str, Any]) -> None:
    """Append an ``ExportRecorded`` to the actor's audit log of today (retrying races):
    one append when the log is cached, never a replay of the day's log."""
    ledger.record_export(actor, what, parameters, datetime.now(UTC).date())
