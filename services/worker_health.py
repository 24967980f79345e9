"""A worker's heartbeat: a small JSON file that a compose healthcheck reads.

Each worker (``project``, ``relay``, ``seal --follow``) names its file in
``LEDGER_HEALTH_FILE``; a thread rewrites it every few seconds with the time, the process
id and the worker's position (what it last applied, published or sealed). ``salesledger
health --file F --max-age S`` exits 0 only while the heartbeat is younger than ``S``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0


class HealthReporter:
    """Writes ``path`` every ``interval`` seconds from a daemon thread until ``stop``:
    ``{"worker", "pid", "heartbeat", "position", "error"}``. ``position()`` may fail (the
    database away): the heartbeat still beats, with the error, since the worker waits
    the outage out."""

    def __init__(
        self,
        path: str,
        worker: str,
        position: Callable[[], int | None],
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.worker = worker
        self._position = position
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> HealthReporter:
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> None:
        report: dict[str, Any] = {"worker": self.worker, "pid": os.getpid(), "error": None}
        try:
            report["position"] = self._position()
        except Exception as error:  # noqa: BLE001 - reported, the worker retries it
            report["position"], report["error"] = None, str(error)
        report["heartbeat"] = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        partial.write_text(json.dumps(report))
        partial.replace(self.path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except OSError:
                log.exception("could not write the health file %s", self.path)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)


def report_health(path: str, worker: str, position: Callable[[], int | None]) -> HealthReporter:
    """A started reporter, or one that writes nothing when ``path`` is empty."""
    if not path:
        return _Silent(worker)
    return HealthReporter(path, worker, position).start()


class _Silent(HealthReporter):
    def __init__(self, worker: str) -> None:
        super().__init__("", worker, lambda: None)

    def start(self) -> HealthReporter:
        return self

    def stop(self) -> None:
        return


def check_health_file(path: str, max_age: float, now: float | None = None) -> str | None:
    """None if ``path`` holds a heartbeat younger than ``max_age`` seconds; else why not."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        return f"no readable health file {path}: {error}"
    age = (now or time.time()) - float(report.get("heartbeat", 0))
    if age > max_age:
        return f"{report.get('worker')}: last heartbeat {age:.0f} s ago (more than {max_age:g})"
    return None
