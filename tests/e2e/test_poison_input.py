"""Requests that once stored events no consumer could process, or answered 500: each is
refused with 422 naming the field, on SQLite and on PostgreSQL, and the projections
keep going."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(store_settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    _, token = ledger.issue_token("admin", actor="admin")
    app = create_app(store_settings, ledger, project_in_process=True)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    ledger.close()


def _refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    assert field in response.text, response.text


def _register(client: TestClient, headers: dict[str, str], body: str) -> Any:
    return client.post("/customers", content=body.encode(), headers={**headers, **JSON})


def _customer_count(client: TestClient, headers: dict[str, str], position: int) -> int:
    response = client.get(
        "/monitoring/unowned-customers", params={"min_position": position}, headers=headers
    )
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def test_unstorable_text_is_refused_and_projections_keep_going(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = api
    _refused(_register(client, headers, '{"name": "Nul\\u0000Corp", "source": "web"}'), "name")
    _refused(_register(client, headers, '{"name": "Lone \\ud800", "source": "web"}'), "name")
    _refused(_register(client, headers, '{"name": "Bell\\u0007", "source": "web"}'), "name")
    big = json.dumps({"name": "Big Co", "source": "web", "profile": {"notes": "x" * 1_500_000}})
    too_big = _register(client, headers, big)  # over the body limit: refused before parsing
    assert too_big.status_code == 413, too_big.text
    under_the_body_limit = {"notes": ["x" * 9_000] * 28}  # ~250 KiB: over the event size
    big = json.dumps({"name": "Big Co", "source": "web", "profile": under_the_body_limit})
    _refused(_register(client, headers, big), "profile")
    accepted = _register(client, headers, '{"name": "Tab\\tand\\nnewline Co", "source": "web"}')
    assert accepted.status_code == 201, accepted.text
    customer_id = accepted.json()["aggregate_id"]
    reason = client.post(
        f"/customers/{customer_id}/classification",
        json={"classification": "A", "reason": "because\u0000"},
        headers=headers,
    )
    _refused(reason, "reason")
    assert _customer_count(client, headers, accepted.json()["position"]) == 1


def test_periods_outside_the_supported_years_are_refused(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = api
    for period in ("0000-Q1", "9999-W53", "2025-W53", "2026%0A"):
        _refused(client.get(f"/forecasts/{period}", headers=headers), "period")
    plan = {"name": "Far", "period": "9999-W53", "targets": {"revenue": "100"}}
    _refused(client.post("/plans", json=plan, headers=headers), "period")


def test_numbers_beyond_the_range_are_refused(api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = api
    body = '{"name": "Huge", "period": "2026", "targets": {"revenue": 1e400}}'
    _refused(client.post("/plans", content=body.encode(), headers={**headers, **JSON}), "revenue")
    body = '{"name": "Huge", "period": "2026", "targets": {"revenue": "1e20"}}'
    _refused(client.post("/plans", content=body.encode(), headers={**headers, **JSON}), "revenue")


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/funnel", "owner"),
        ("/funnel", "team"),
        ("/monitoring/activity", "person"),
        ("/monitoring/ownership-transfers", "person"),
        ("/monitoring/stale-deals", "owner"),
    ],
)
def test_nul_in_a_query_filter_is_refused(
    api: tuple[TestClient, dict[str, str]], path: str, parameter: str
) -> None:
    client, headers = api
    _refused(client.get(path, params={parameter: "rep\x001"}, headers=headers), parameter)
