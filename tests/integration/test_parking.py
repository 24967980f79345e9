"""Events stored below the application (an older version's data) that a projection
cannot process are parked, alerted and flagged; everything else goes on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from commands.ledger import SalesLedger
from projections.parking import parked_events
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.api.app import create_app
from services.api.dependencies import INCOMPLETE_HEADER
from services.bootstrap import build_ledger
from services.cli import main
from services.read_store import open_read_store
from services.settings import Settings
from tests.conftest import build_team, postgres_admin_conninfo, wait_for_read_horizon

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger(postgres_settings: Settings) -> Iterator[SalesLedger]:
    ledger = build_ledger(postgres_settings)
    build_team(ledger)
    yield ledger
    ledger.close()


def _inject(settings: Settings, ledger: SalesLedger, template_position: int) -> list[int]:
    """As a superuser, straight into the table: a copy of a stored event with a NUL in
    its source and actor (its name is encrypted), and one whose state is not JSON at all."""
    (template,) = ledger.recorder.select_notifications(template_position, 1)
    poisoned = template.state.replace(b'"source":"web"', b'"source":"Nul\\u0000Corp"')
    poisoned = poisoned.replace(b'"actor":"rep1"', b'"actor":"Nul\\u0000Rep"')
    assert poisoned != template.state
    table = ledger.recorder.events_table_name  # type: ignore[attr-defined]
    with psycopg.connect(postgres_admin_conninfo(settings.postgres_dbname)) as admin:
        rows = [
            admin.execute(
                f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                "VALUES (%s, 1, %s, %s) RETURNING notification_id",
                (uuid.uuid4(), template.topic, state),
            ).fetchone()
            for state in (poisoned, b"\xff not json")
        ]
    return [int(row[0]) for row in rows if row is not None]


def test_a_poisoned_event_is_parked_and_the_rest_continue(
    ledger: SalesLedger, postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = ledger.register_customer(name="Template Co", source="web", actor="rep1")
    assert template.position is not None
    wait_for_read_horizon(ledger)
    poisoned = _inject(postgres_settings, ledger, template.position)
    after = ledger.register_customer(name="After Co", source="web", actor="rep1")
    wait_for_read_horizon(ledger)
    database = open_read_store(postgres_settings)
    runner = ProjectionRunner(ledger, database, all_projections())
    runner.catch_up()
    assert set(runner.positions().values()) == {after.position}
    with database.transaction() as tx:
        parked = parked_events(tx)
    assert {p.position for p in parked} == set(poisoned)
    assert {p.consumer for p in parked if p.position == poisoned[1]} == set(runner.names)
    assert any("NUL" in p.error for p in parked if p.position == poisoned[0])

    _, token = ledger.issue_token("admin", actor="admin")
    with TestClient(create_app(postgres_settings, ledger, project_in_process=True)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        answer = client.get("/monitoring/unowned-customers", headers=headers)
        assert answer.status_code == 200, answer.text
        names = {item["name"] for item in answer.json()["items"]}
        assert {"Template Co", "After Co"} <= names
        assert f"positions={poisoned[0]},{poisoned[1]}" in answer.headers[INCOMPLETE_HEADER]
        listed = client.get("/monitoring/parked", headers=headers).json()
        assert {entry["position"] for entry in listed} == set(poisoned)
        metrics = client.get("/metrics", headers=headers).text
        by_consumer = {
            sample.labels["consumer"]: sample.value
            for family in text_string_to_metric_families(metrics)
            if family.name == "salesledger_parked_events"
            for sample in family.samples
        }
        assert sum(by_consumer.values()) == len(listed)
        assert set(by_consumer) == {entry["consumer"] for entry in listed}

    monkeypatch.setenv("LEDGER_STORE", "postgres")
    monkeypatch.setenv("POSTGRES_DBNAME", postgres_settings.postgres_dbname)
    assert main(["parked"]) == 1
    assert main(["parked", "--retry"]) == 1  # still poisoned: it stays parked
    with database.transaction() as tx:
        assert {p.position for p in parked_events(tx)} == set(poisoned)
    database.close()
