"""What ``bench/http.py`` is made of: the servers it starts, the clients it runs and the
figures it takes from them.

Clients are threads of the bench's own process, one keep-alive ``http.client``
connection each (a client is one user, waiting for each answer before the next request).
Both systems are measured by the same clients, so the client's own cost is in both.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 30.0
"""Seconds a client waits for an answer before counting a timeout."""

Request = tuple[str, str, bytes | None, str]
"""(method, path, JSON body, kind): one request of the mix."""


@dataclass
class Sample:
    """What one client saw: per request its kind, status (0: no answer) and milliseconds."""

    kinds: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    millis: list[float] = field(default_factory=list)

    def add(self, kind: str, status: int, ms: float) -> None:
        self.kinds.append(kind)
        self.statuses.append(status)
        self.millis.append(ms)

    def extend(self, other: Sample) -> None:
        self.kinds += other.kinds
        self.statuses += other.statuses
        self.millis += other.millis


class Client:
    """A user of one system: ``next_request`` says what it asks for next."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    def next_request(self, rng: random.Random) -> Request:
        raise NotImplementedError

    def answered(self, request: Request, status: int, body: bytes) -> None:
        """Told each answer (e.g. to follow a deal's stage)."""


class BaselineClient(Client):
    """80 % ``GET /read`` (SELECT 1), 20 % ``POST /write`` (one INSERT)."""

    def next_request(self, rng: random.Random) -> Request:
        if rng.random() < 0.8:
            return ("GET", "/read", None, "read")
        return ("POST", "/write", b"{}", "write")


def run_clients(clients: Sequence[Client], seconds: float, seed: int) -> tuple[Sample, float]:
    """Every client asking as fast as it is answered for ``seconds``; what they saw and
    the seconds it took."""
    samples = [Sample() for _ in clients]
    start = threading.Barrier(len(clients) + 1)
    deadline: list[float] = []

    def work(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        connection = _connect(clients[n].port)
        start.wait()
        while time.perf_counter() < deadline[0]:
            connection = _one_request(clients[n], connection, rng, samples[n])
        connection.close()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    deadline.append(time.perf_counter() + seconds)
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    total = Sample()
    for sample in samples:
        total.extend(sample)
    return total, elapsed


def _connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)


def _one_request(
    client: Client, connection: http.client.HTTPConnection, rng: random.Random, sample: Sample
) -> http.client.HTTPConnection:
    request = client.next_request(rng)
    method, path, body, kind = request
    began = time.perf_counter()
    try:
        connection.request(method, path, body=body, headers=client.headers)
        response = connection.getresponse()
        data = response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        connection.close()
        sample.add(kind, 0, (time.perf_counter() - began) * 1000)
        return _connect(client.port)
    sample.add(kind, status, (time.perf_counter() - began) * 1000)
    client.answered(request, status, data)
    return connection


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return ordered[rank]


def summary(sample: Sample, seconds: float) -> dict[str, Any]:
    """Requests per second, p50/p99 and the errors of one run."""
    errors = {
        "4xx": sum(1 for s in sample.statuses if 400 <= s < 500),
        "5xx": sum(1 for s in sample.statuses if s >= 500),
        "no_answer": sum(1 for s in sample.statuses if s == 0),
    }
    by_status: dict[str, int] = {}
    for status in sample.statuses:
        if not 200 <= status < 300:
            by_status[str(status)] = by_status.get(str(status), 0) + 1
    return {
        "requests": len(sample.statuses),
        "req_per_s": round(len(sample.statuses) / seconds, 1),
        "p50_ms": round(percentile(sample.millis, 0.50), 2),
        "p99_ms": round(percentile(sample.millis, 0.99), 2),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "error_statuses": by_status,
    }


def per_kind(sample: Sample) -> dict[str, dict[str, float]]:
    """p50/p99 of each kind of request."""
    kinds: dict[str, list[float]] = {}
    for kind, ms in zip(sample.kinds, sample.millis, strict=True):
        kinds.setdefault(kind, []).append(ms)
    return {
        kind: {
            "n": len(values),
            "p50_ms": round(percentile(values, 0.5), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
        }
        for kind, values in sorted(kinds.items())
    }


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


# Servers.


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[Any]]:
    """A process started in its own session (its workers with it), stopped at the end."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def wait_until_answering(port: int, path: str, process: subprocess.Popen[Any]) -> None:
    """Return once ``GET path`` gets any HTTP answer; fail if the process ends first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = _connect(port)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not answer in time")


def salesledger(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def uvicorn_baseline(port: int, workers: int) -> list[str]:
    """The baseline served as ``salesledger serve`` serves the ledger (see ``_serve``)."""
    command = [sys.executable, "-m", "uvicorn", "bench.baseline_app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    return command


def request_json(
    port: int, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    """One request outside the measured runs (set-up, checks)."""
    connection = _connect(port)
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else None


def timed(call: Callable[[], Any], runs: int) -> dict[str, float]:
    """p50/p99 in milliseconds of ``runs`` calls, one after the other."""
    millis = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        millis.append((time.perf_counter() - began) * 1000)
    return {
        "p50_ms": round(percentile(millis, 0.5), 2),
        "p99_ms": round(percentile(millis, 0.99), 2),
    }
