"""The sealing worker (`salesledger seal --follow`) extends the ledger-wide chain and the
Merkle tree as events arrive and signs a head each time; what it sealed verifies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from services.bootstrap import build_ledger
from services.integrity import ChainVerifier
from services.settings import Settings
from services.transparency.keys import create_signing_key
from services.transparency.offline import key_id, tree_hash, verify_head
from services.transparency.store import tree_store_for
from tests.conftest import build_team


def test_the_sealing_worker_follows_new_events(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = build_ledger(Settings(store="sqlite", sqlite_path=str(path)))
    build_team(ledger)
    key = create_signing_key(tmp_path / "key.pem")
    env = {**os.environ, "LEDGER_STORE": "sqlite", "LEDGER_SQLITE_PATH": str(path),
           "LEDGER_SIGNING_KEY_FILE": str(tmp_path / "key.pem")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "seal", "--follow", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        first = worker.stdout.readline()
        assert first.startswith("signed tree head: size")
        last = ledger.register_customer(name="Late Co", source="web", actor="rep1").position
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline and f"up to position {last}," not in line:
            line = worker.stdout.readline()
        assert f"up to position {last}," in line
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    report = ChainVerifier(ledger.recorder).verify_range()  # type: ignore[arg-type]
    assert report.ok and report.sealed_upto == last
    head = tree_store_for(ledger.recorder).latest_head()
    assert head is not None and head.last_position == last
    verify_head(head, {key_id(key.public_key()): key.public_key()})
    hashes = [r.hash for r in ledger.recorder.select_chained(0, last, last)]  # type: ignore[attr-defined]
    assert head.root_bytes == tree_hash(hashes) and head.tree_size == len(hashes)
    ledger.close()
