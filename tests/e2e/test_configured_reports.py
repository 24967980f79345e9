"""Reports use the configuration in force, on SQLite and PostgreSQL: the funnel weights
with the configured stage probabilities (an as-of funnel with those in force then, so a
change never rewrites history), and the stale list's default is the configured stale days."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from events.base import recorded_at
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

OPENED = datetime(2026, 3, 2, 9, tzinfo=UTC)
PROBABILITIES = {"1": 40, "2": 45, "3": 50, "4": 60, "5": 70, "6": 80, "7": 95}


@dataclass
class Api:
    client: TestClient
    headers: dict[str, dict[str, str]]
    opened_at_position: int


@pytest.fixture
def api(store_settings: Settings) -> Iterator[Api]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    with recorded_at(OPENED):
        customer = ledger.register_customer(name="Acme", source="web", owner_id="rep1",
                                            actor="rep1")  # fmt: skip
        opened = ledger.open_opportunity(
            customer_id=customer.aggregate_id, owner_id="rep1", title="ERP", source="web",
            amount=Decimal(1000), expected_close=date(2026, 9, 30), product="erp",
            region="north", actor="rep1",
        )  # fmt: skip
    headers = {
        p: {"Authorization": f"Bearer {ledger.issue_token(p, actor='admin')[1]}"}
        for p in ("admin", "rep1")
    }
    assert opened.position is not None
    with TestClient(create_app(store_settings, ledger, project_in_process=True)) as client:
        yield Api(client, headers, opened.position)
    ledger.close()


def get(api: Api, path: str, **params: Any) -> Any:
    response = api.client.get(path, params=params, headers=api.headers["rep1"])
    assert response.status_code == 200, response.text
    return response.json()


def configure(api: Api, changes: dict[str, Any]) -> int:
    body = {"changes": changes, "reason": "the sales director's new assumptions"}
    response = api.client.post(
        "/organisation/configuration", json=body, headers=api.headers["admin"]
    )
    assert response.status_code == 200, response.text
    return int(response.json()["position"])


def stage_one(funnel: Any) -> tuple[str, str]:
    first = funnel["stages"][0]
    return first["probability"], first["weighted_amount"]


def test_the_funnel_weighs_with_the_probabilities_in_force_then(api: Api) -> None:
    before = stage_one(get(api, "/funnel", min_position=api.opened_at_position))
    position = configure(api, {"stage_probabilities": PROBABILITIES})

    now = stage_one(get(api, "/funnel", min_position=position))
    back_then = stage_one(get(api, "/funnel", as_of="2026-03-03"))

    assert before == ("0.05", "50.00")
    assert now == ("0.4", "400.00")
    assert back_then == before  # the change does not rewrite the past


def test_the_stale_list_defaults_to_the_configured_stale_days(api: Api) -> None:
    idle_days = (datetime.now(UTC) - OPENED).days
    assert get(api, "/monitoring/stale-deals", days=idle_days + 1)["items"] == []
    position = configure(api, {"stale_days": idle_days + 1})
    assert get(api, "/monitoring/stale-deals", min_position=position)["items"] == []
    position = configure(api, {"stale_days": idle_days - 1})
    stale = get(api, "/monitoring/stale-deals", min_position=position)["items"]
    assert [item["title"] for item in stale] == ["ERP"]
