"""Recording bulk reads and exports as events, with who and what."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from aggregates.audit_log import AuditLog, audit_log_id
from aggregates.errors import NotFoundError
from commands.ledger import SalesLedger

ATTEMPTS = 5


def record_export(ledger: SalesLedger, actor: str, what: str, parameters: dict[str, Any]) -> None:
    """Append an ``ExportRecorded`` to the actor's audit log of today (retrying races)."""
    today = datetime.now(UTC).date()
    for attempt in range(ATTEMPTS):
        try:
            log = ledger.load(AuditLog, audit_log_id(actor, today))
        except NotFoundError:
            log = AuditLog.open(actor, today)
        log.record_export(what, parameters)
        try:
            ledger.save(log)
            return
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
