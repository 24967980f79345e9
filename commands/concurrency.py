"""Signals between the application service and the event store about stale inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID


class GuardMovedError(Exception):
    """An aggregate a decision read (but did not write) changed before the append, so
    the store refused the append; the decision is made again on fresh inputs."""


class LedgerRecorder(Protocol):
    """What the application needs of the event store beyond the library's recorder
    (``services.persistence`` implements it on PostgreSQL and SQLite)."""

    def select_claims(self, keys: Sequence[str]) -> dict[str, str]: ...

    def max_committed_notification_id(self) -> int: ...

    def max_notification_id(self) -> int | None: ...

    def select_aggregate_chain(self, originator_id: UUID) -> Sequence[StoredPosition]: ...


class StoredPosition(Protocol):
    """Where an aggregate's event at a version is in the ledger."""

    @property
    def position(self) -> int: ...

    @property
    def version(self) -> int: ...
