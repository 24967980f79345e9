"""/livez, /readyz and /metrics of `serve --workers 2` on PostgreSQL: readiness follows
the projections' lag; the metrics add up over the worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregates.organisation import Role
from commands.ledger import SalesLedger
from services.settings import Settings
from tests.integration.processes import ROOT, ApiProcess, call

pytestmark = pytest.mark.integration

COMMANDS = 12


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels…}`` (labels in any order), or None."""
    for line in metrics.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match[3])
    return None


@pytest.fixture
def api(postgres_settings: Settings, tmp_path: Path) -> Iterator[tuple[ApiProcess, str]]:
    ledger = SalesLedger(env=postgres_settings.event_store_env())
    ledger.set_up_organisation("Co", "admin", "Admin")
    ledger.add_person("rep", "Ray", Role.SALES_REP, None, actor="admin")
    _, token = ledger.issue_token("rep", actor="admin")
    ledger.close()
    extra = {"LEDGER_READY_LAG_MAX": "0", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with ApiProcess(postgres_settings, extra, "--workers", "2") as process:
        yield process, token


def _project_once(settings: Settings) -> None:
    env = {**os.environ, **settings.event_store_env(), "LEDGER_STORE": "postgres",
           "LEDGER_POSTGRES_DBNAME": settings.postgres_dbname}
    subprocess.run(
        [sys.executable, "-m", "services.cli", "project", "--once", "--processes", "1"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=60,
    )


def test_readiness_follows_the_projections_and_metrics_add_up_over_workers(
    postgres_settings: Settings, api: tuple[ApiProcess, str]
) -> None:
    process, token = api
    assert call("GET", f"{process.base}/livez") == (200, {"status": "alive"})
    for n in range(COMMANDS):
        status, _ = call("POST", f"{process.base}/customers", token, {"name": f"S{n}",
                                                                      "source": "web"})
        assert status == 201
    status, body = call("GET", f"{process.base}/readyz")
    assert status == 503 and body["status"] == "lagging" and "funnel" in body["lagging"]

    _project_once(postgres_settings)
    status, body = call("GET", f"{process.base}/readyz")
    assert (status, body["lagging"]) == (200, [])

    status, metrics = call("GET", f"{process.base}/metrics")
    assert status == 200
    accepted = sample(metrics, "salesledger_commands_total", command="register_customer",
                      outcome="accepted")
    assert accepted == COMMANDS  # counted by both workers, summed
    requests = sample(metrics, "salesledger_http_request_duration_seconds_count",
                      route="/customers", method="POST", status="201")
    assert requests == COMMANDS
    head = sample(metrics, "salesledger_ledger_head_position")
    assert head is not None and head >= COMMANDS
    assert sample(metrics, "salesledger_projection_position", projection="funnel") == head
    assert sample(metrics, "salesledger_projection_lag_events", projection="funnel") == 0
    assert sample(metrics, "salesledger_db_pool_connections", pool="read_models",
                  state="max") == 2 * 3  # two workers' pools of 3
