"""A worker's heartbeat file and the `salesledger health` check that reads it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.cli import main
from services.worker_health import HealthReporter, check_health_file


def test_a_fresh_heartbeat_is_healthy_and_a_stale_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "relay.json"
    reporter = HealthReporter(str(path), "relay", lambda: 42, interval=0.05).start()
    time.sleep(0.2)
    reporter.stop()
    report = json.loads(path.read_text())
    assert (report["worker"], report["position"], report["error"]) == ("relay", 42, None)
    assert check_health_file(str(path), max_age=5) is None
    stale = check_health_file(str(path), max_age=5, now=report["heartbeat"] + 60)
    assert stale is not None and "last heartbeat 60 s ago" in stale


def test_a_failing_position_still_beats_with_the_error(tmp_path: Path) -> None:
    def unreachable() -> int:
        raise OSError("connection refused")

    path = tmp_path / "project.json"
    HealthReporter(str(path), "project", unreachable).beat()
    report = json.loads(path.read_text())
    assert report["position"] is None and report["error"] == "connection refused"


def test_the_health_command_exits_1_without_a_heartbeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--file", str(tmp_path / "missing.json")]) == 1
    assert "no readable health file" in capsys.readouterr().err
    path = tmp_path / "seal.json"
    HealthReporter(str(path), "seal", lambda: 1).beat()
    assert main(["health", "--file", str(path), "--max-age", "30"]) == 0
