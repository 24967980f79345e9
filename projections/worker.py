"""Keeping projections current in a thread: catch up, then sleep until there is more."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.05
"""After a pass that applied events, how long the worker lets more gather before the
next: under a steady stream of writes every pass costs the same few round trips per
projection whatever it carries, so passes of 50 ms of events cost a fraction of passes
of one event each. The first event after a quiet spell is applied at once."""


class ProjectionWorker:
    """Keeps a runner's projections current until stopped.

    On PostgreSQL it sleeps on LISTEN for the event store's NOTIFY and also wakes every
    ``poll_interval`` seconds (an event becomes readable only once every older writing
    transaction has finished, which sends no notification). On SQLite it polls, and
    in-process writers may call ``wake()``.
    """

    def __init__(
        self,
        runner: ProjectionRunner,
        channel: str,
        poll_interval: float = 0.5,
        gather: float = GATHER_SECONDS,
    ) -> None:
        self.runner = runner
        self.channel = channel
        self.poll_interval = poll_interval
        self.gather = gather
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Process events until ``stop()``; errors are logged and retried after a pause."""
        while not self._stop.is_set():
            try:
                if self.runner.catch_up() == 0:
                    self._idle()
                elif self.gather > 0:
                    self._stop.wait(self.gather)
            except Exception:
                log.exception("projection batch failed; retrying")
                self._stop.wait(self.poll_interval)

    def _idle(self) -> None:
        if self.runner.database.dialect == "postgres":
            self.runner.database.wait_for_notify(self.channel, self.poll_interval)
        else:
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="projection-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
