"""The sealing window: how long after its commit an event is sealed and under a signed head.

Until then, an event at the tail could be removed (or one inserted) below the application
without the seals noticing; only the signed heads kept outside the database close that
window (``docs/integrity.md``). This measures it as deployed: ``salesledger seal
--follow`` (the compose ``sealer`` service) on PostgreSQL, while a client appends one
command at a time at a steady pace; for each command, the time from the command's
return (its commit) to the sealing worker printing a signed head that covers its
position. The baseline in the same run is the same append alone (its own latency).
(``bench.transparency lag`` measures the sealing loop alone, in-process, against eight
writers; this measures the deployed worker end to end, for every command.)

    python -m bench.seal_window --commands 200 --pace 0.05

Connection settings come from POSTGRES_* (``eval "$(scripts/postgres env)"``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.harness import fresh_database
from bench.http import server_env
from bench.http_load import percentile
from commands.ledger import SalesLedger
from services.settings import Settings
from services.transparency.keys import create_signing_key

HEAD_LINE = re.compile(r"up to position (\d+),")


def _follow_heads(stdout: object, heads: list[tuple[float, int]]) -> None:
    """Record (when, sealed position) for every signed head the worker prints."""
    for line in stdout:  # type: ignore[attr-defined]
        found = HEAD_LINE.search(line)
        if found:
            heads.append((time.perf_counter(), int(found.group(1))))


def measure(commands: int, pace: float, interval: float) -> dict[str, float]:
    with fresh_database("seal") as dbname, tempfile.TemporaryDirectory() as keys:
        key_file = Path(keys) / "signing.pem"
        create_signing_key(key_file)
        ledger = SalesLedger(
            env=Settings(store="postgres", postgres_dbname=dbname).event_store_env()
        )
        ledger.set_up_organisation("Bench Co", "admin", "Admin")
        env = {**os.environ, **server_env(dbname), "LEDGER_SIGNING_KEY_FILE": str(key_file)}
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "seal", "--follow", "--interval", str(interval)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        heads: list[tuple[float, int]] = []
        threading.Thread(target=_follow_heads, args=(worker.stdout, heads), daemon=True).start()
        committed: list[tuple[float, int, float]] = []
        try:
            started = time.perf_counter() + 60
            while not heads and time.perf_counter() < started:  # the organisation's head
                time.sleep(0.05)
            for n in range(commands):
                began = time.perf_counter()
                result = ledger.register_customer(name=f"Customer {n}", source="web", actor="admin")
                done = time.perf_counter()
                committed.append((done, result.position or 0, done - began))
                time.sleep(pace)
            deadline = time.perf_counter() + 30
            while (not heads or heads[-1][1] < committed[-1][1]) and time.perf_counter() < deadline:
                time.sleep(0.05)
        finally:
            worker.terminate()
            worker.wait(timeout=10)
            ledger.close()
    windows = []
    for done, position, _ in committed:
        sealed_at = next((when for when, upto in heads if upto >= position), None)
        if sealed_at is None:
            raise SystemExit(f"position {position} was never sealed")
        windows.append(max(0.0, sealed_at - done) * 1000)
    appends = [latency * 1000 for _, _, latency in committed]
    return {
        "window_p50_ms": statistics.median(windows),
        "window_p99_ms": percentile(windows, 0.99),
        "window_max_ms": max(windows),
        "append_p50_ms": statistics.median(appends),
        "append_p99_ms": percentile(appends, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between commands")
    parser.add_argument("--interval", type=float, default=1.0, help="the worker's --interval")
    args = parser.parse_args()
    figures = measure(args.commands, args.pace, args.interval)
    print(
        f"commit → signed head: p50 {figures['window_p50_ms']:.0f} ms, "
        f"p99 {figures['window_p99_ms']:.0f} ms, max {figures['window_max_ms']:.0f} ms; "
        f"the append itself: p50 {figures['append_p50_ms']:.1f} ms, "
        f"p99 {figures['append_p99_ms']:.1f} ms "
        f"(window p50 {figures['window_p50_ms'] / figures['append_p50_ms']:.1f}× the append)"
    )


if __name__ == "__main__":
    main()
