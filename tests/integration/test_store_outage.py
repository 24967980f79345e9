"""A lost database connection: the command fails clearly (503 over HTTP), nothing is
half-written, and the next command, or the retry with the same key, goes through."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import OperationalError
from fastapi.testclient import TestClient

from commands.ledger import SalesLedger
from events.opportunity import OpportunityActivityLogged
from services.api.app import create_app
from services.settings import Settings
from tests.conftest import build_team, postgres_admin_conninfo

pytestmark = pytest.mark.integration


def _open_deal(ledger: SalesLedger) -> str:
    customer = ledger.register_customer(name="Outage Co", source="web", actor="rep1")
    return ledger.open_opportunity(
        customer_id=customer.aggregate_id,
        owner_id="rep1",
        title="deal",
        source="web",
        amount=Decimal("1000"),
        expected_close=date(2027, 1, 1),
        product="p",
        region="r",
        actor="rep1",
    ).aggregate_id


def _cut_append_connections(settings: Settings, ledger: SalesLedger) -> None:
    """Terminate the server sessions the ledger appends on (as a restart or a network
    cut would), leaving its read pool alone."""
    pids = ledger.store._append_connections.backend_pids()  # type: ignore[attr-defined]
    assert pids, "the ledger has appended, so it holds an append connection"
    with psycopg.connect(postgres_admin_conninfo(settings.postgres_dbname), autocommit=True) as c:
        for pid in pids:
            c.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _activities(ledger: SalesLedger, deal_id: str, summary: str) -> int:
    events = ledger.stored_events(UUID(deal_id))
    return sum(
        1 for e in events if isinstance(e, OpportunityActivityLogged) and e.summary == summary
    )


def test_a_command_on_a_lost_connection_fails_and_the_next_goes_through(
    postgres_settings: Settings,
) -> None:
    ledger = SalesLedger(env=postgres_settings.event_store_env())
    build_team(ledger)
    deal_id = _open_deal(ledger)
    _cut_append_connections(postgres_settings, ledger)

    with pytest.raises(OperationalError):
        ledger.log_opportunity_activity(deal_id, "call", "lost", actor="rep1")
    ledger.log_opportunity_activity(deal_id, "call", "recorded", actor="rep1")

    assert _activities(ledger, deal_id, "lost") == 0
    assert _activities(ledger, deal_id, "recorded") == 1
    ledger.close()


def test_the_api_answers_503_and_a_retry_with_the_same_key_records_once(
    postgres_settings: Settings,
) -> None:
    ledger = SalesLedger(env=postgres_settings.event_store_env())
    build_team(ledger)
    deal_id = _open_deal(ledger)
    _, token = ledger.issue_token("rep1", actor="admin")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "call-42"}
    body = {"kind": "call", "summary": "retried"}
    app = create_app(postgres_settings, ledger, project_in_process=False)
    with TestClient(app) as client:
        _cut_append_connections(postgres_settings, ledger)
        refused = client.post(f"/opportunities/{deal_id}/activities", json=body, headers=headers)
        assert refused.status_code == 503
        assert refused.json()["error"] == "store_unavailable"
        assert refused.headers["Retry-After"] == "1"

        first = client.post(f"/opportunities/{deal_id}/activities", json=body, headers=headers)
        again = client.post(f"/opportunities/{deal_id}/activities", json=body, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json()["duplicate"] is True
    assert again.json()["version"] == first.json()["version"]
    assert _activities(ledger, deal_id, "retried") == 1
    ledger.close()
