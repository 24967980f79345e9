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


class ImportRecorded(LedgerEvent):
    """A file from another CRM was imported: which, how many rows, which lines made what.

    The imported events carry their original times; this event is stamped when the
    import was recorded, by the person who ran it."""

    file: str
    kind: str
    sha256: str
    rows: int
    imported: int
    lines: dict[str, list[int]]
    """Aggregate id → the file's line numbers that changed it."""
