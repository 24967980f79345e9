"""Snapshots of long-lived aggregates: a deal of 10,000 events loads from its latest
snapshot and the events after it, not from its first event.

The library's ``Snapshot`` stores an aggregate's attributes as JSON, which keeps neither
enum members nor tuples. A snapshot is therefore taken only if it gives back exactly the
aggregate it was taken of (checked each time it is taken, at most once per
``SNAPSHOT_INTERVAL`` events); an aggregate class may define ``restore_types()`` to turn
such values back after loading. A class whose snapshots do not give it back is loaded
from its events, as before.
"""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import IntegrityError

SNAPSHOT_INTERVAL = 100
"""Events between two snapshots of one aggregate."""

log = logging.getLogger(__name__)


class LedgerSnapshot(Snapshot):
    """A snapshot whose aggregate may restore the types JSON does not keep."""

    def mutate(self, _: None) -> Any:
        aggregate = super().mutate(None)
        restore = getattr(aggregate, "restore_types", None)
        if restore is not None:
            restore()
        return aggregate


def snapshot_due(previous_version: int, version: int, interval: int = SNAPSHOT_INTERVAL) -> bool:
    """Whether going from ``previous_version`` to ``version`` passed a multiple of ``interval``."""
    return version // interval > previous_version // interval


def _comparable(aggregate: Any) -> str:
    state = {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}
    return repr(sorted(state.items()))


class Snapshotter:
    """Takes an application's snapshots after its appends."""

    def __init__(
        self,
        app: Any,
        interval: int = SNAPSHOT_INTERVAL,
        never: tuple[type[Aggregate], ...] = (),
    ) -> None:
        """``never``: aggregates never snapshotted (those holding personal data: a
        snapshot would copy it out of the erasable fields of their events)."""
        self.app = app
        self.interval = interval
        self.unsupported: set[type[Aggregate]] = set(never)

    def after_append(self, aggregate: Aggregate, previous_version: int) -> None:
        """Store a snapshot if the append passed an interval (and it gives back the
        aggregate exactly); a snapshot another process stored first is kept."""
        if self.app.snapshots is None or type(aggregate) in self.unsupported:
            return
        if not snapshot_due(previous_version, aggregate.version, self.interval):
            return
        snapshot = LedgerSnapshot.take(aggregate)
        stored = self.app.mapper.to_stored_event(snapshot)
        restored = self.app.mapper.to_domain_event(stored).mutate(None)
        if _comparable(restored) != _comparable(aggregate):
            log.info("no snapshots of %s: they do not give it back", type(aggregate).__name__)
            self.unsupported.add(type(aggregate))
            return
        try:
            self.app.snapshots.recorder.insert_events([stored])
        except IntegrityError:
            return
