"""Correlation and causation ids, on SQLite and PostgreSQL: every event a request causes
records the request's correlation id (its ``X-Correlation-ID``, else its trace id) and,
as its causation id, the request id; they are stored and hashed with the event, shown in
its history and published as CloudEvents extensions. Events caused outside a request
(the CLI, the demo) carry none."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from aggregates.evaluation import QUALIFICATION_CRITERIA
from commands.ledger import SalesLedger
from events.base import caused_by
from events.messages import encode_event
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class Api:
    client: TestClient
    ledger: SalesLedger
    headers: dict[str, str]
    customer_id: str


@pytest.fixture
def api(store_settings: Settings) -> Iterator[Api]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    customer = ledger.register_customer(name="Acme", source="web", owner_id="rep1", actor="rep1")
    headers = {"Authorization": f"Bearer {ledger.issue_token('rep1', actor='admin')[1]}"}
    with TestClient(create_app(store_settings, ledger, project_in_process=False)) as client:
        yield Api(client, ledger, headers, customer.aggregate_id)
    ledger.close()


def open_deal(api: Api, **extra: str) -> Any:
    body = {
        "customer_id": api.customer_id, "owner_id": "rep1", "title": "ERP",
        "source": "web", "amount": "1000", "expected_close": "2026-12-20", "product": "erp",
        "region": "north",
    }  # fmt: skip
    response = api.client.post("/opportunities", json=body, headers={**api.headers, **extra})
    assert response.status_code == 201, response.text
    return response


def test_a_requests_events_record_its_correlation_and_causation(api: Api) -> None:
    answer = open_deal(api, **{"X-Request-ID": "req-7", "X-Correlation-ID": "order-42"})
    deal = answer.json()["aggregate_id"]

    history = api.client.get(f"/opportunities/{deal}/history", headers=api.headers).json()
    stored = list(api.ledger.stored_events(UUID(deal)))

    assert answer.headers["x-correlation-id"] == "order-42"
    assert [(e["correlation_id"], e["causation_id"]) for e in history] == [("order-42", "req-7")]
    assert (vars(stored[0])["correlation_id"], vars(stored[0])["causation_id"]) == (
        "order-42", "req-7"
    )
    assert "correlation_id" not in history[0]["changes"]
    message = dict(encode_event(stored[0], 1, topic_prefix="t").headers)
    assert (message["ce_correlationid"], message["ce_causationid"]) == (b"order-42", b"req-7")


def test_without_a_correlation_id_the_trace_is_the_correlation(api: Api) -> None:
    traceparent = f"00-{TRACE}-00f067aa0ba902b7-01"
    answer = open_deal(api, traceparent=traceparent, **{"X-Correlation-ID": "a b"})
    event = next(iter(api.ledger.stored_events(UUID(answer.json()["aggregate_id"]))))

    assert vars(event)["correlation_id"] == TRACE  # a malformed X-Correlation-ID is not taken
    assert vars(event)["causation_id"] == answer.headers["x-request-id"]


def test_events_outside_a_request_carry_none_and_the_block_ends(api: Api) -> None:
    ledger = api.ledger
    with caused_by("import-2026-12-07", "line-3"):
        inside = ledger.open_opportunity(
            customer_id=api.customer_id, owner_id="rep1", title="CRM", source="web",
            amount=Decimal(5), expected_close=date(2026, 12, 20), product="crm",
            region="north", actor="rep1",
        )  # fmt: skip
    outside = ledger.qualify_opportunity(
        inside.aggregate_id, dict.fromkeys(QUALIFICATION_CRITERIA, True), actor="rep1"
    )

    events = list(ledger.stored_events(UUID(inside.aggregate_id)))
    assert vars(events[0])["correlation_id"] == "import-2026-12-07"
    assert outside.version == 2 and not hasattr(events[1], "correlation_id")
    assert "ce_correlationid" not in dict(encode_event(events[1], 2, topic_prefix="t").headers)
