"""Events of the audit log: who read or exported what, in bulk."""

from __future__ import annotations

from typing import Any

from events.base import LedgerCreated, LedgerEvent


class AuditLogOpened(LedgerCreated):
    """A person's audit log for one day was started."""

    person_id: str
    day: str


class ExportRecorded(LedgerEvent):
    """A bulk read or export (audit trail, history download, integrity proof) was served."""

    what: str
    parameters: dict[str, Any]
