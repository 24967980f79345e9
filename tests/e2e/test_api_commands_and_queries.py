"""The API as a client uses it: commands over HTTP, then queries of the projections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.evaluation import QUALIFICATION_CRITERIA
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings

ALL_MET = {criterion: True for criterion in QUALIFICATION_CRITERIA}


class Api:
    """A TestClient with a person's token, asserting status codes."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, body: dict[str, Any], status: int = 200, **kw: Any) -> Any:
        response = self.client.post(
            path,
            json=body,
            headers={**self.headers, **kw},
        )
        assert response.status_code == status, response.text
        return response.json()

    def get(self, path: str, status: int = 200, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=self.headers)
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture
def tokens_and_client(tmp_path: Path) -> Iterator[tuple[dict[str, str], TestClient]]:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    ledger.set_up_organisation("Demo Co", "admin", "Admin")
    ledger.add_person("boss", "Boss", "manager", None, actor="admin")
    ledger.add_person("rep", "Rep", "sales_rep", "boss", actor="admin")
    ledger.add_person("audit", "Auditor", "auditor", None, actor="admin")
    tokens = {p: ledger.issue_token(p, actor="admin")[1] for p in ("admin", "boss", "rep", "audit")}
    app = create_app(settings, ledger)
    with TestClient(app) as client:
        yield tokens, client


@pytest.fixture
def rep(tokens_and_client: tuple[dict[str, str], TestClient]) -> Api:
    tokens, client = tokens_and_client
    return Api(client, tokens["rep"])


@pytest.fixture
def auditor(tokens_and_client: tuple[dict[str, str], TestClient]) -> Api:
    tokens, client = tokens_and_client
    return Api(client, tokens["audit"])


@pytest.fixture
def boss(tokens_and_client: tuple[dict[str, str], TestClient]) -> Api:
    tokens, client = tokens_and_client
    return Api(client, tokens["boss"])


def open_deal(api: Api, customer_name: str = "Acme Machinery", amount: str = "1000") -> str:
    customer = api.post(
        "/customers", {"name": customer_name, "source": "web", "owner_id": "rep"}, status=201
    )
    deal = api.post(
        "/opportunities",
        {
            "customer_id": customer["aggregate_id"],
            "owner_id": "rep",
            "title": "Line automation",
            "source": "referral",
            "amount": amount,
            "expected_close": "2026-06-30",
            "product": "robot-arm",
            "region": "east",
        },
        status=201,
    )
    return str(deal["aggregate_id"])


def test_a_command_then_a_query_reads_its_own_write(rep: Api) -> None:
    deal = open_deal(rep)
    rep.post(f"/opportunities/{deal}/qualification", {"criteria": ALL_MET})
    moved = rep.post(f"/opportunities/{deal}/stage", {"to_stage": 3})

    funnel = rep.get("/funnel", min_position=moved["position"])

    stage3 = funnel["stages"][2]
    assert (stage3["count"], stage3["amount"], stage3["weighted_amount"]) == (1, "1000", "200.00")
    assert funnel["open_count"] == 1


def test_funnel_filters_by_team_region_and_close_period(rep: Api, boss: Api) -> None:
    open_deal(rep, "Acme", "1000")
    last = rep.client.post(
        "/customers", json={"name": "Bolt Works", "source": "web"}, headers=rep.headers
    ).json()["position"]
    by_team = boss.get("/funnel", team="boss", min_position=last)
    assert by_team["stages"][0]["count"] == 1
    rep.get("/funnel", status=403, team="boss")
    assert rep.get("/funnel", region="west")["open_count"] == 0
    assert rep.get("/funnel", close_period="2026-Q2")["open_count"] == 1
    assert rep.get("/funnel", close_period="2026-Q3")["open_count"] == 0


def test_the_funnel_as_of_a_past_moment_counts_deals_as_they_were(rep: Api, auditor: Api) -> None:
    deal = open_deal(rep)
    before = rep.get(f"/opportunities/{deal}")["state"]
    qualified = rep.post(f"/opportunities/{deal}/qualification", {"criteria": ALL_MET})
    trail = auditor.get("/audit", aggregate_id=deal, min_position=qualified["position"])["items"]
    opened_at = trail[0]["recorded_at"]
    rep.post(f"/opportunities/{deal}/stage", {"to_stage": 4})

    past = rep.get("/funnel", as_of=opened_at, min_position=qualified["position"])
    past_deal = rep.get(f"/opportunities/{deal}", as_of=opened_at)

    assert past["stages"][0]["count"] == 1 and past["stages"][3]["count"] == 0
    assert past_deal["state"]["stage"] == before["stage"] == 1


def test_every_event_is_in_the_audit_trail_with_actor_and_changes(rep: Api, auditor: Api) -> None:
    deal = open_deal(rep)
    moved = rep.post(f"/opportunities/{deal}/qualification", {"criteria": ALL_MET})

    page = auditor.get("/audit", aggregate_id=deal, min_position=moved["position"])

    assert [e["event_type"] for e in page["items"]] == [
        "OpportunityOpened",
        "OpportunityQualified",
    ]
    assert {e["actor"] for e in page["items"]} == {"rep"}
    assert page["items"][1]["changes"]["criteria"] == ALL_MET


def test_audit_trail_pages_with_a_cursor(rep: Api, auditor: Api) -> None:
    result = rep.post("/customers", {"name": "Acme", "source": "web"}, status=201)
    first = auditor.get("/audit", limit=2, min_position=result["position"])
    second = auditor.get("/audit", limit=2, cursor=first["next_cursor"])
    assert [e["position"] for e in first["items"]] == [1, 2]
    assert second["items"][0]["position"] == 3


def test_a_request_without_a_valid_token_is_refused_with_401(
    tokens_and_client: tuple[dict[str, str], TestClient],
) -> None:
    _, client = tokens_and_client
    missing = client.get("/funnel")
    wrong = client.get("/funnel", headers={"Authorization": "Bearer nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["error"] == "unauthenticated"


def test_domain_errors_map_to_their_status_codes(rep: Api, boss: Api, auditor: Api) -> None:
    customer = rep.post(
        "/customers", {"name": "Acme Ltd", "source": "web", "tax_id": "T-1"}, status=201
    )
    duplicate = rep.post("/customers", {"name": "ACME", "source": "fair"}, status=409)
    assert duplicate["existing_customer_id"] == customer["aggregate_id"]
    auditor.get("/opportunities/not-a-uuid", status=404)
    deal = open_deal(rep, "Other Co")
    rep.post(f"/opportunities/{deal}/stage", {"to_stage": 5}, status=422)
    rep.post("/plans", {"name": "P", "period": "2026", "targets": {"revenue": "1"}}, status=403)
    boss.post("/plans", {"name": "P", "period": "20x6", "targets": {"revenue": "1"}}, status=422)


def test_bad_input_is_a_422_with_details_never_a_500(rep: Api) -> None:
    body = rep.post("/opportunities", {"amount": "-5", "title": 3}, status=422)
    assert body["error"] == "validation_error" and body["invalid_params"]
    assert {p["name"] for p in body["invalid_params"]} >= {"amount", "title"}
    rep.post("/customers", {"name": "X", "source": "web", "actor": "boss"}, status=422)
    rep.get("/funnel", close_period="someday", status=422)
    rep.get("/funnel", as_of="yesterday-ish", status=422)


def test_waiting_for_a_position_the_ledger_never_recorded_is_refused_at_once(rep: Api) -> None:
    body = rep.get("/funnel", min_position=10**9, status=422)
    assert "has not been recorded" in body["detail"]


def test_a_projection_that_stays_behind_answers_504(tmp_path: Path) -> None:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    ledger.set_up_organisation("Demo Co", "admin", "Admin")
    _, token = ledger.issue_token("admin", actor="admin")
    position = ledger.add_person("rep", "Rep", "sales_rep", None, actor="admin").position
    app = create_app(settings, ledger, project_in_process=False)
    with TestClient(app) as client:
        body = Api(client, token).get("/funnel", min_position=position, status=504)
    assert body["error"] == "projection_behind" and body["requested_position"] == position


def test_an_idempotency_key_records_a_command_once(rep: Api) -> None:
    first = rep.post(
        "/customers", {"name": "Once", "source": "web"}, status=201, **{"Idempotency-Key": "k1"}
    )
    again = rep.client.post(
        "/customers",
        json={"source": "web", "name": "Once"},
        headers={**rep.headers, "Idempotency-Key": "k1"},
    )
    assert again.status_code == 201 and again.json() == first
    assert first["position"] is not None
    assert again.headers["Idempotent-Replayed"] == "true"


def test_openapi_documents_every_route_with_a_summary_and_response_model(rep: Api) -> None:
    spec = rep.client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert operation.get("description") or operation.get("summary"), (method, path)
            assert "200" in operation["responses"] or "201" in operation["responses"]
