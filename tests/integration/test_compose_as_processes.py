"""docker-compose.yml proven without Docker: every ledger service's command runs as a
process with its environment (hosts, ports, paths and the role remapped to this machine),
on a fresh database of the test PostgreSQL and the test Kafka broker. Every healthcheck
passes, a write load lands, every process stays up within the connection budget, the
projections and Kafka reach the store's head, and /metrics shows the lag rise and fall."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from commands.ledger import SalesLedger
from services.settings import Settings
from services.transparency.keys import load_signing_key
from services.transparency.offline import SignedTreeHead, key_id, verify_head
from tests.conftest import drop_database, postgres_admin_conninfo
from tests.integration.processes import ROOT, call, database_connections, free_port
from tests.integration.test_health_and_metrics import sample

pytestmark = pytest.mark.integration

LEDGER_IMAGE = "salesledger:latest"
COMPOSE_PORT = "8000"
WRITES = 80
HEALTHY_WITHIN_SECONDS = 60
HEALTHCHECK_TIMEOUT_SECONDS = 10
CAUGHT_UP_WITHIN_SECONDS = 30
CONNECTION_BUDGET = 83 - 10
"""docs/deployment.md's total without the one-off cli service."""
LAGS = ("salesledger_projection_lag_events", "salesledger_relay_lag_events")


def ed25519_pem() -> bytes:
    """A fresh Ed25519 private key in PKCS#8 PEM (the fixed DER prefix, 32 random bytes)."""
    der = bytes.fromhex("302e020100300506032b657004220420") + secrets.token_bytes(32)
    body = base64.b64encode(der)
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"\n-----END PRIVATE KEY-----\n"


@dataclass
class Remap:
    """What a compose name or path stands for on this machine."""

    settings: Settings
    role: str
    prefix: str
    port: int
    directory: Path
    replacements: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = self.directory / "ledger_signing_key.pem"
        self.key.write_bytes(ed25519_pem())
        self.replacements = {
            "kafka:9092": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092"),
            "/run/secrets/ledger_signing_key": str(self.key),
            "/tmp/salesledger-metrics": str(self.directory / "metrics"),
            "0.0.0.0": "127.0.0.1",
            "ledger_app": self.role,
        }

    def text(self, service: str, value: str) -> str:
        if value == COMPOSE_PORT:  # the API's --port
            return str(self.port)
        value = value.replace("$$", "$")
        value = value.replace("/tmp/salesledger-health.json", str(self.directory / service))
        value = value.replace(f":{COMPOSE_PORT}/", f":{self.port}/")
        for compose, here in self.replacements.items():
            value = value.replace(compose, here)
        return value

    def environment(self, service: str, compose_env: dict[str, str]) -> dict[str, str]:
        env = {name: self.text(service, str(value)) for name, value in compose_env.items()}
        owner = env.get("POSTGRES_USER") == "ledger"
        env.update(
            POSTGRES_HOST=self.settings.postgres_host,
            POSTGRES_PORT=str(self.settings.postgres_port),
            POSTGRES_DBNAME=self.settings.postgres_dbname,
            LEDGER_KAFKA_TOPIC_PREFIX=self.prefix,
        )
        if owner:  # compose's superuser, who runs init-db: the test server's superuser
            env.update(POSTGRES_USER=os.environ.get("POSTGRES_ADMIN_USER", "postgres"),
                       POSTGRES_PASSWORD=os.environ.get("POSTGRES_ADMIN_PASSWORD", "trusted"))
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("LEDGER_", "POSTGRES_", "PROMETHEUS_"))}
        return {**inherited, **env, "PATH": path}

    def command(self, service: str, definition: dict[str, Any]) -> list[str]:
        words = definition.get("entrypoint") or ["salesledger", *definition.get("command", [])]
        return [self.text(service, str(word)) for word in words]


def compose_services() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {
        name: service
        for name, service in loaded["services"].items()
        if service.get("image") == LEDGER_IMAGE and "profiles" not in service
    }


@pytest.fixture
def remap(postgres_settings: Settings, tmp_path: Path) -> Iterator[Remap]:
    role = f"ledger_app_{uuid.uuid4().hex[:8]}"
    yield Remap(postgres_settings, role, f"t{uuid.uuid4().hex[:10]}", free_port(), tmp_path)
    drop_database(postgres_settings.postgres_dbname)  # and every privilege granted in it
    with psycopg.connect(postgres_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}", "{role}_appender"')


@pytest.fixture
def stack(remap: Remap) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    services = compose_services()
    init = services.pop("init")
    subprocess.run(
        remap.command("init", init), cwd=remap.directory, check=True, timeout=60,
        env=remap.environment("init", init["environment"]),
    )
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, service in services.items():
            assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
            running[name] = subprocess.Popen(
                remap.command(name, service), cwd=remap.directory,
                env=remap.environment(name, service["environment"]),
                stdout=subprocess.DEVNULL,
            )
        yield running
    finally:
        for process in running.values():
            process.terminate()
        for process in running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_healthy(remap: Remap, running: dict[str, subprocess.Popen[bytes]]) -> None:
    services = compose_services()
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    pending = set(running)
    while pending:
        checks = {}
        for name in sorted(pending):  # the healthchecks of one round run side by side
            assert running[name].poll() is None, f"{name} exited with {running[name].returncode}"
            test = services[name]["healthcheck"]["test"]
            assert test[0] == "CMD"
            checks[name] = subprocess.Popen(
                [remap.text(name, word) for word in test[1:]],
                env=remap.environment(name, services[name]["environment"]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        pending -= {name for name, check in checks.items() if _passed(check)}
        assert time.monotonic() < deadline, f"not healthy: {sorted(pending)}"
        time.sleep(0.3)


def _passed(check: subprocess.Popen[bytes]) -> bool:
    """Whether a healthcheck exited 0 within its compose ``timeout`` (a slow one failed)."""
    try:
        return check.wait(timeout=HEALTHCHECK_TIMEOUT_SECONDS) == 0
    except subprocess.TimeoutExpired:
        check.kill()
        check.wait()
        return False


def kafka_messages(prefix: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in consumer.topics() if topic.startswith(f"{prefix}.")
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0
    finally:
        consumer.close()


def test_the_compose_stack_runs_as_processes(
    remap: Remap, stack: dict[str, subprocess.Popen[bytes]]
) -> None:
    started = time.monotonic()
    wait_until_healthy(remap, stack)
    print(f"healthy after {time.monotonic() - started:.1f} s")
    base = f"http://127.0.0.1:{remap.port}"
    as_the_app = remap.settings.model_copy(
        update={"postgres_user": remap.role, "postgres_password": remap.role}
    )
    ledger = SalesLedger(env=as_the_app.event_store_env())
    _, token = ledger.issue_token("admin", actor="system")
    ledger.close()

    scrapes: list[str] = []
    connections: list[int] = []
    loading = threading.Event()
    loading.set()

    def watch() -> None:
        while loading.is_set():
            scrapes.append(call("GET", f"{base}/metrics")[1])
            connections.append(database_connections(remap.settings))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(
            lambda n: call("POST", f"{base}/customers", token,
                           {"name": f"Shop {n}", "source": "web"})[0],
            range(WRITES),
        ))
    assert statuses == [201] * WRITES

    deadline = time.monotonic() + CAUGHT_UP_WITHIN_SECONDS
    while True:
        metrics = call("GET", f"{base}/metrics")[1]
        head = sample(metrics, "salesledger_ledger_head_position") or 0
        lags = [sample(metrics, name, **labels) for name, labels in _lag_series(metrics)]
        if head >= WRITES and lags and all(lag == 0 for lag in lags):
            break
        assert time.monotonic() < deadline, f"still lagging at head {head}: {lags}"
        time.sleep(0.2)
    loading.clear()
    watcher.join()

    assert max(_total_lag(scrape) for scrape in scrapes) > 0  # the lag rose…
    assert _total_lag(metrics) == 0  # …and came back to 0
    assert kafka_messages(remap.prefix) >= head
    for name in ("funnel", "monitoring", "audit"):
        assert sample(metrics, "salesledger_projection_position", projection=name) == head
    assert max(connections) <= CONNECTION_BUDGET
    assert all(process.poll() is None for process in stack.values()), {
        name: process.returncode for name, process in stack.items()
    }
    assert call("GET", f"{base}/readyz")[0] == 200
    _the_api_serves_heads_signed_with_the_one_key(base, token, remap.key)


def _the_api_serves_heads_signed_with_the_one_key(base: str, token: str, pem: Path) -> None:
    """The sealer signs with the compose secret; any API worker serves its heads, which
    the secret's public key verifies."""
    public = load_signing_key(pem).public_key()
    keys = {key_id(public): public}
    deadline = time.monotonic() + CAUGHT_UP_WITHIN_SECONDS
    while True:
        status, body = call("GET", f"{base}/integrity/heads/latest", token)
        if status == 200 and body["last_position"] >= WRITES:
            break
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.3)
    for _ in range(8):  # spread over the API's worker processes
        status, body = call("GET", f"{base}/integrity/heads/latest", token)
        assert status == 200
        verify_head(SignedTreeHead.from_json(body), keys)


def _lag_series(metrics: str) -> list[tuple[str, dict[str, str]]]:
    series = []
    for line in metrics.splitlines():
        for name in LAGS:
            if line.startswith(f"{name}{{"):
                label, value = line[len(name) + 1:].split("}")[0].split("=")
                series.append((name, {label: value.strip('"')}))
    return series


def _total_lag(metrics: str) -> float:
    return sum(sample(metrics, name, **labels) or 0 for name, labels in _lag_series(metrics))
