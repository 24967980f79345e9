"""Helpers for tests that run the ledger's commands as processes: an API server on a free
port, HTTP calls, and the connections a database has open."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from services.settings import Settings
from tests.conftest import postgres_admin_conninfo

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call_with_headers(
    method: str, url: str, token: str | None = None, body: Any = None, timeout: float = 30
) -> tuple[int, Any, dict[str, str]]:
    """Status, JSON body (or text) and headers (lower-case names) of one request."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, got = response.read(), response.status, response.headers
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, error.headers
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw.decode()
    return status, parsed, {name.lower(): value for name, value in got.items()}


def call(
    method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    status, parsed, _ = call_with_headers(method, url, token, body)
    return status, parsed


def database_connections(settings: Settings) -> int:
    """Client connections open on ``settings``' database, other than this one. Counted
    as the server's superuser: another role's sessions show no ``backend_type`` to a
    role that is not a member of it (or of ``pg_read_all_stats``)."""
    admin = postgres_admin_conninfo(settings.postgres_dbname)
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            [settings.postgres_dbname],
        ).fetchone()
    return int(row[0]) if row else 0


class ApiProcess:
    """``salesledger serve`` on a free loopback port, on ``settings``' database, with
    ``extra`` environment; started on enter (once ``/livez`` answers), stopped on exit."""

    def __init__(self, settings: Settings, extra: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._command = [
            sys.executable, "-m", "services.cli", "serve", "--port", str(self.port),
            "--project", "no", *args,
        ]
        self._env = {
            **os.environ,
            **settings.event_store_env(),
            "LEDGER_STORE": "postgres",
            "LEDGER_POSTGRES_DBNAME": settings.postgres_dbname,
            **extra,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ApiProcess:
        self.process = subprocess.Popen(self._command, cwd=ROOT, env=self._env)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/openapi.json", timeout=2).close()
                return self
            except OSError:
                if not self.alive() or time.monotonic() > deadline:
                    self.process.kill()
                    raise RuntimeError("salesledger serve did not start") from None
                time.sleep(0.2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
