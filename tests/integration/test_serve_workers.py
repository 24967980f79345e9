"""`salesledger serve --workers N`: several API processes on one port, sharing PostgreSQL;
concurrent commands through them all land, each exactly once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from aggregates.organisation import Role
from commands.ledger import SalesLedger
from events.customer import CustomerRegistered
from services.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.event_store_env(), "LEDGER_STORE": "postgres"}


def _call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.fixture
def server(postgres_settings: Settings) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "--port", str(port)]
        + ["--workers", str(WORKERS)],
        cwd=ROOT,
        env=_environment(postgres_settings),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/openapi.json", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("salesledger serve --workers did not start")
            time.sleep(0.2)
    yield base, process
    process.terminate()
    process.wait(timeout=30)


def test_commands_through_several_api_processes_all_land_once(
    postgres_settings: Settings, server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    base, process = server
    ledger = SalesLedger(env=postgres_settings.event_store_env())
    ledger.set_up_organisation("Co", "admin", "Admin")
    ledger.add_person("rep", "Ray", Role.SALES_REP, None, actor="admin")
    _, token = ledger.issue_token("rep", actor="admin")

    def register(n: int) -> tuple[int, Any]:
        return _call("POST", f"{base}/customers", token, {"name": f"Shop {n}", "source": "web"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(register, range(40)))

    assert len(_worker_pids(process.pid)) >= WORKERS
    assert [status for status, _ in answers] == [201] * 40
    ids = {body["aggregate_id"] for _, body in answers}
    assert len(ids) == 40
    for customer_id in ids:
        (registered,) = ledger.stored_events(UUID(customer_id))
        assert isinstance(registered, CustomerRegistered)
        assert registered.actor == "rep"
    ledger.close()


def test_workers_need_postgresql(tmp_path: Path) -> None:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", "--workers", "2"],
        cwd=ROOT,
        env={**os.environ, **settings.event_store_env(), "LEDGER_STORE": "sqlite"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers above 1 needs LEDGER_STORE=postgres" in result.stderr
