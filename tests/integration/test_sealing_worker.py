"""The sealing worker (`salesledger seal --follow`) extends the ledger-wide chain as
events arrive, and what it sealed verifies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from services.bootstrap import build_ledger
from services.integrity import ChainVerifier
from services.settings import Settings
from tests.conftest import build_team


def test_the_sealing_worker_follows_new_events(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = build_ledger(Settings(store="sqlite", sqlite_path=str(path)))
    build_team(ledger)
    env = {**os.environ, "LEDGER_STORE": "sqlite", "LEDGER_SQLITE_PATH": str(path)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "seal", "--follow", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        first = worker.stdout.readline()
        assert first.startswith("sealed up to position")
        last = ledger.register_customer(name="Late Co", source="web", actor="rep1").position
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline and not line.endswith(f"position {last}\n"):
            line = worker.stdout.readline()
        assert line == f"sealed up to position {last}\n"
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    report = ChainVerifier(ledger.recorder).verify_range()  # type: ignore[arg-type]
    assert report.ok and report.sealed_upto == last
    ledger.close()
