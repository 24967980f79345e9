"""One rule for records and people a request names: "does not exist" and "you may not see
it" get the same 403 with the same message, in paths, bodies and query parameters; and
monitoring lists cover the people the caller sees. On SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.visibility import UNSEEN_PERSON_RULE, UNSEEN_RECORD_RULE
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

PEOPLE = ("rep1", "rep3", "mgr", "other-mgr", "vp", "auditor", "admin")


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    customer: str
    deal: str
    rep3_customer: str

    def call(
        self, actor: str, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> tuple[int, Any]:
        response = self.client.request(
            method,
            path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.tokens[actor]}"},
        )
        return response.status_code, response.json()

    def settled(self) -> int:
        """The ledger's last position, for ``min_position`` (read your writes)."""
        _, body = self.call(
            "admin", "POST", f"/customers/{self.customer}/profile", {"changes": {"x": 1}}
        )
        return int(body["position"])


@pytest.fixture
def api(store_settings: Settings) -> Iterator[Api]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    customer = ledger.register_customer(name="Acme", source="web", owner_id="rep1", actor="rep1")
    deal = ledger.open_opportunity(
        customer_id=customer.aggregate_id,
        owner_id="rep1",
        title="ERP",
        source="web",
        amount=Decimal("1000"),
        expected_close=date(2026, 1, 15),
        product="erp",
        region="north",
        actor="rep1",
    )
    ledger.log_opportunity_activity(deal.aggregate_id, "call", "intro", actor="rep1")
    rep3_customer = ledger.register_customer(
        name="Globex", source="web", owner_id="rep3", actor="rep3"
    )
    tokens = {p: ledger.issue_token(p, actor="admin")[1] for p in PEOPLE}
    app = create_app(store_settings, ledger, project_in_process=True)
    with TestClient(app) as client:
        yield Api(
            client, tokens, customer.aggregate_id, deal.aggregate_id, rep3_customer.aggregate_id
        )
    ledger.close()


def _deal_body(customer_id: str, owner: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "owner_id": owner,
        "title": "Mine now",
        "source": "web",
        "amount": "10",
        "expected_close": "2026-09-01",
        "product": "erp",
        "region": "north",
    }


def test_a_body_naming_an_unseen_or_missing_record_gets_the_same_403(api: Api) -> None:
    missing = str(uuid.uuid4())
    opened = [
        api.call("rep3", "POST", "/opportunities", _deal_body(c, "rep3"))
        for c in (api.customer, missing, "not-a-uuid")
    ]
    assert {status for status, _ in opened} == {403}
    assert len({body["detail"] for _, body in opened}) == 1
    assert UNSEEN_RECORD_RULE in opened[0][1]["detail"]
    assert api.call("admin", "POST", "/opportunities", _deal_body(missing, "rep3"))[0] == 404

    activities = [
        api.call(
            "rep3",
            "POST",
            f"/customers/{api.rep3_customer}/activities",
            {"kind": "call", "summary": "hi", "opportunity_id": deal},
        )
        for deal in (api.deal, missing)
    ]
    assert [status for status, _ in activities] == [403, 403]
    assert activities[0][1] == activities[1][1]

    forecasts = [
        api.call("rep3", "POST", "/forecasts/2026-Q1/submission", {"opportunity_ids": [deal]})
        for deal in (api.deal, missing)
    ]
    assert [status for status, _ in forecasts] == [403, 403]
    assert forecasts[0][1] == forecasts[1][1]
    assert api.deal not in str(forecasts[0][1])


def test_revising_an_unsubmitted_forecast_names_the_rule_not_an_id(api: Api) -> None:
    status, body = api.call(
        "vp",
        "POST",
        "/forecasts/2026-Q1/people/rep1/revisions",
        {"adjusted_total": "5", "reason": "gut feeling"},
    )
    assert status == 422
    assert "has not submitted" in body["detail"]
    status, body = api.call(
        "rep3",
        "POST",
        "/forecasts/2026-Q1/people/rep1/revisions",
        {"adjusted_total": "5", "reason": "gut feeling"},
    )
    assert (status, UNSEEN_PERSON_RULE in body["detail"]) == (403, True)


def test_a_query_naming_an_unseen_or_missing_person_gets_the_same_403(api: Api) -> None:
    for path, parameter in (
        ("/funnel", "owner"),
        ("/funnel", "team"),
        ("/funnel/health", "owner"),
        ("/funnel/conversion", "team"),
        ("/monitoring/stale-deals", "owner"),
        ("/monitoring/slipped-deals", "team"),
        ("/monitoring/activity", "person"),
        ("/monitoring/ownership-transfers", "person"),
    ):
        answers = [
            api.call("rep3", "GET", path, None, **{parameter: p}) for p in ("rep1", "nobody")
        ]
        assert [status for status, _ in answers] == [403, 403], (path, parameter, answers)
        assert answers[0][1] == answers[1][1]
        assert api.call("mgr", "GET", path, None, **{parameter: "rep1"})[0] == 200, path
    assert api.call("rep1", "GET", "/funnel", owner="rep1")[0] == 200
    assert api.call("auditor", "GET", "/funnel", team="other-mgr")[0] == 200


def test_monitoring_lists_cover_the_callers_people_only(api: Api) -> None:
    position = api.settled()

    def slipped(actor: str) -> set[str]:
        status, body = api.call(actor, "GET", "/monitoring/slipped-deals", min_position=position)
        assert status == 200, body
        return {item["opportunity_id"] for item in body["items"]}

    def active_people(actor: str) -> set[str]:
        status, body = api.call(actor, "GET", "/monitoring/activity", min_position=position)
        assert status == 200, body
        return {row["person_id"] for row in body}

    assert slipped("rep1") == slipped("mgr") == slipped("auditor") == {api.deal}
    assert slipped("other-mgr") == slipped("rep3") == set()
    assert active_people("mgr") == {"rep1"}
    assert active_people("other-mgr") == set()
    _, page = api.call("mgr", "GET", "/monitoring/slipped-deals", min_position=position)
    row = page["items"][0]
    assert (row["customer_name"], row["owner_name"], row["amount"]) == ("Acme", "Ray", "1000")
    assert row["days_overdue"] == (date.today() - date(2026, 1, 15)).days
    status, body = api.call("rep1", "GET", "/monitoring/stale-deals", min_position=position)
    assert status == 200 and body["items"] == []
