"""The audit log: every bulk read and export, by whom and of what, one log per person per day."""

from __future__ import annotations

from datetime import date
from functools import singledispatchmethod
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from events.audit import AuditLogOpened, ExportRecorded, ImportRecorded


def audit_log_id(person_id: str, day: date) -> UUID:
    """The id of ``person_id``'s audit log on ``day``."""
    return uuid5(NAMESPACE_URL, f"salesledger:audit-log:{day.isoformat()}:{person_id}")


class AuditLog(Aggregate):
    """One person's bulk reads and exports on one day."""

    def __init__(self) -> None:
        self.person_id = ""
        self.day = ""
        self.exports: list[tuple[str, dict[str, Any]]] = []
        self.imports: list[tuple[str, str, str]] = []

    def restore_types(self) -> None:
        """After loading from a snapshot (kept as JSON): each export a tuple again."""
        self.exports = [(what, parameters) for what, parameters in self.exports]

    @classmethod
    def open(cls, person_id: str, day: date) -> AuditLog:
        return cls._create(
            AuditLogOpened,
            id=audit_log_id(person_id, day),
            person_id=person_id,
            day=day.isoformat(),
            actor=person_id,
        )

    def record_export(self, what: str, parameters: dict[str, Any]) -> None:
        self.trigger_event(ExportRecorded, what=what, parameters=parameters, actor=self.person_id)

    def record_import(
        self, file: str, kind: str, sha256: str, rows: int, lines: dict[str, list[int]]
    ) -> None:
        imported = sum(len(found) for found in lines.values())
        self.trigger_event(
            ImportRecorded,
            file=file,
            kind=kind,
            sha256=sha256,
            rows=rows,
            imported=imported,
            lines=lines,
            actor=self.person_id,
        )

    @singledispatchmethod
    def when(self, event: Any) -> None:
        raise NotImplementedError(type(event).__name__)

    @when.register
    def _(self, event: AuditLogOpened) -> None:
        self.person_id = event.person_id
        self.day = event.day

    @when.register
    def _(self, event: ExportRecorded) -> None:
        self.exports.append((event.what, event.parameters))

    @when.register
    def _(self, event: ImportRecorded) -> None:
        self.imports.append((event.kind, event.file, event.sha256))
