"""Recently saved aggregates and the shared organisation, kept in memory, so a command
decides without reading the store.

A decision may take an aggregate from the cache without asking the store whether it is
still current; the append then proves it (a stale copy collides on its next version), and
the decision is made again on the stored one. Which aggregates this thread took that way
is remembered here (``unverified``), so a collision on one of them is told apart from a
real concurrent change.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from aggregates.organisation import Organisation

A = TypeVar("A", bound=Aggregate)

DEFAULT_CACHE_SIZE = 10_000


class StaleCacheError(Exception):
    """A cached aggregate turned out to be behind the store."""


class AggregateCache:
    """At most ``size`` aggregates, least recently saved dropped first, shared by threads."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self._aggregates: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._local = threading.local()

    def take(self, uid: UUID) -> Aggregate | None:
        """The cached aggregate, removed from the cache (the caller will change it)."""
        with self._lock:
            return self._aggregates.pop(uid, None)

    def copy_of(self, uid: UUID, aggregate_class: type[A]) -> A | None:
        """A private copy of the cached aggregate, which stays cached."""
        with self._lock:
            cached = self._aggregates.get(uid)
            return copy.deepcopy(cached) if isinstance(cached, aggregate_class) else None

    def keep(self, aggregate: Aggregate) -> None:
        """Cache the aggregate as just saved, replacing any older copy."""
        with self._lock:
            self._aggregates[aggregate.id] = aggregate
            if len(self._aggregates) > self._size:
                self._aggregates.popitem(last=False)

    def keep_if_absent(self, aggregate: Aggregate) -> None:
        """Cache the aggregate unless a copy is already cached."""
        with self._lock:
            if aggregate.id not in self._aggregates:
                self._aggregates[aggregate.id] = aggregate
                if len(self._aggregates) > self._size:
                    self._aggregates.popitem(last=False)

    def unverified(self) -> set[UUID]:
        """Aggregates this thread took from the cache without checking the store."""
        if not hasattr(self._local, "unverified"):
            self._local.unverified = set()
        unverified: set[UUID] = self._local.unverified
        return unverified


class SharedOrganisation:
    """The one organisation every decision reads, shared by threads: read it, never
    change it (a command that changes the organisation loads its own copy)."""

    def __init__(
        self,
        load: Callable[[], Organisation],
        events_after: Callable[[int], Iterable[Aggregate.Event]],
    ) -> None:
        self._load = load
        self._events_after = events_after
        self._organisation: Organisation | None = None
        self._lock = threading.Lock()
        self._checked_from = float("-inf")
        """When (``time.monotonic``) the latest finished look at the store began."""

    def get(self, *, fresh: bool, since: float | None = None) -> Organisation:
        """The shared organisation; with ``fresh``, brought up to date with the store.
        ``since`` (a ``time.monotonic`` moment, e.g. when a request arrived): a look at
        the store that began after it and has finished is fresh enough, and is not made
        again; a request that waited in a queue meanwhile shares it."""
        shared = self._organisation
        if shared is not None and not fresh:
            return shared
        if shared is not None and since is not None and self._checked_from >= since:
            return shared
        if shared is None:
            with self._lock:
                if self._organisation is None:
                    self._organisation = self._load()
                return self._organisation
        # The store is asked outside the lock: a request waits for its own round trip,
        # never for every other request's (one lock held over a query serialised them).
        began, seen = time.monotonic(), shared.version
        newer = list(self._events_after(seen))
        with self._lock:
            current = self._organisation
            assert current is not None
            for event in newer:
                if event.originator_version == current.version + 1:
                    event.mutate(current)
            if current.version >= seen + len(newer):  # all it saw is in
                self._checked_from = max(self._checked_from, began)
            return current

    def saved(self, saved: Organisation) -> None:
        """Share a copy of the organisation just saved, unless a newer one is shared."""
        with self._lock:
            if self._organisation is None or self._organisation.version < saved.version:
                self._organisation = copy.deepcopy(saved)
