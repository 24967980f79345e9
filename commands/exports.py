"""Recording bulk reads and exports in the actor's audit log of the day."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from aggregates.audit_log import AuditLog, audit_log_id
from aggregates.errors import ConcurrencyConflictError, NotFoundError
from commands.aggregate_cache import StaleCacheError
from commands.application import A, CommandResult, LedgerApplication

EXPORT_RECORD_ATTEMPTS = 5


class ExportCommands(LedgerApplication):
    """Recording what was read or exported in bulk."""

    def record_export(
        self, actor: str, what: str, parameters: dict[str, Any], day: date
    ) -> CommandResult:
        """Append an ``ExportRecorded`` to ``actor``'s audit log of ``day``.

        The log is kept in the aggregate cache like any other, so a warm append reads
        nothing first: it is one append at the cached version (a stale cache collides and
        is reloaded). It needs no organisation guard: recording a read decides nothing.
        """
        log_id = audit_log_id(actor, day)
        for attempt in range(EXPORT_RECORD_ATTEMPTS):
            self._cache.unverified().clear()
            try:
                log = self._cached_or_loaded(AuditLog, log_id)
                if log is None:
                    log = AuditLog.open(actor, day)
                log.record_export(what, parameters)
                return self._save(log, actor=actor, command_id=None)
            except (StaleCacheError, ConcurrencyConflictError):
                if attempt == EXPORT_RECORD_ATTEMPTS - 1:
                    raise
            finally:
                self._cache.unverified().clear()
        raise AssertionError("unreachable")

    def _cached_or_loaded(self, aggregate_class: type[A], uid: UUID) -> A | None:
        """The aggregate to change, from the cache unverified (see ``_run``) or loaded;
        None if it does not exist."""
        cached = self._cache.take(uid)
        if isinstance(cached, aggregate_class):
            self._cache.unverified().add(uid)
            return cached
        try:
            return self.load(aggregate_class, uid)
        except NotFoundError:
            return None
