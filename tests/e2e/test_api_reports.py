"""The reports through the API: funnel, conversion, forecasts, plan vs actual, monitoring."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.evaluation import QUALIFICATION_CRITERIA
from events.base import recorded_at
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings

ALL_MET = {criterion: True for criterion in QUALIFICATION_CRITERIA}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    ledger.set_up_organisation("Demo Co", "admin", "Admin")
    ledger.add_person("boss", "Boss", "manager", None, actor="admin")
    ledger.add_person("rep", "Rep", "sales_rep", "boss", actor="admin")
    ledger.add_person("rep2", "Rep Two", "sales_rep", "boss", actor="admin")
    headers = {
        p: {"Authorization": f"Bearer {ledger.issue_token(p, actor='admin')[1]}"}
        for p in ("admin", "boss", "rep", "rep2")
    }
    with TestClient(create_app(settings, ledger)) as test_client:
        yield test_client, headers


def call(
    client: TestClient,
    headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    **params: Any,
) -> Any:
    response = client.request(method, path, json=body, params=params, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def won_deal(client: TestClient, headers: dict[str, str], owner: str, amount: str) -> str:
    """A deal opened (on 1 April 2026, through the ledger, so it can close in May) and won
    through the API."""
    ledger = client.app.state.context.ledger  # type: ignore[attr-defined]
    with recorded_at(datetime(2026, 4, 1, 9, tzinfo=UTC)):
        customer = ledger.register_customer(
            name=f"Customer of {owner} {amount}", source="web", owner_id=owner, actor=owner
        )
        deal = ledger.open_opportunity(
            customer_id=customer.aggregate_id,
            owner_id=owner,
            title="Deal",
            source="referral",
            amount=Decimal(amount),
            expected_close=date(2026, 5, 15),
            product="arm",
            region="east",
            actor=owner,
        ).aggregate_id
    call(client, headers, "POST", f"/opportunities/{deal}/qualification", {"criteria": ALL_MET})
    call(client, headers, "POST", f"/opportunities/{deal}/stage", {"to_stage": 7})
    call(
        client,
        headers,
        "POST",
        f"/opportunities/{deal}/win",
        {"amount": amount, "closed_on": "2026-05-10"},
    )
    return str(deal)


def test_forecasts_roll_up_with_revisions_and_accuracy(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    test_client, headers = client
    deal = won_deal(test_client, headers["rep"], "rep", "1000")
    call(
        test_client,
        headers["rep"],
        "POST",
        "/forecasts/2026-Q2/submission",
        {"opportunity_ids": [deal]},
    )
    call(
        test_client,
        headers["boss"],
        "POST",
        "/forecasts/2026-Q2/submission",
        {"opportunity_ids": []},
    )
    revised = call(
        test_client,
        headers["boss"],
        "POST",
        "/forecasts/2026-Q2/people/boss/revisions",
        {"adjusted_total": "800", "reason": "cautious"},
    )

    report = call(
        test_client, headers["boss"], "GET", "/forecasts/2026-Q2", min_position=revised["position"]
    )

    people = {p["person_id"]: p for p in report["people"]}
    assert people["rep"]["rollup_unadjusted"] == "1000"
    assert people["boss"]["rollup_unadjusted"] == "1000"
    assert people["boss"]["rollup_adjusted"] == "800"
    assert people["boss"]["revisions"][0]["reason"] == "cautious"
    assert people["boss"]["actual"] == "1000"
    assert people["boss"]["accuracy"] == "0.8000"


def test_plan_vs_actual_and_customer_resource_plan(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    test_client, headers = client
    won_deal(test_client, headers["rep"], "rep", "1000")
    plan = call(
        test_client,
        headers["boss"],
        "POST",
        "/plans",
        {"name": "FY", "period": "2026", "targets": {"revenue": "4000"}},
    )["aggregate_id"]
    call(
        test_client,
        headers["boss"],
        "POST",
        f"/plans/{plan}/decompositions",
        {
            "parent": "total",
            "dimension": "employee",
            "allocations": {"rep": {"revenue": "3000"}, "rep2": {"revenue": "1000"}},
        },
    )
    done = call(
        test_client,
        headers["boss"],
        "POST",
        f"/plans/{plan}/decompositions",
        {
            "parent": "total",
            "dimension": "period",
            "allocations": {f"2026-Q{q}": {"revenue": "1000"} for q in range(1, 5)},
        },
    )

    attainment = call(
        test_client,
        headers["boss"],
        "GET",
        f"/plans/{plan}/attainment",
        min_position=done["position"],
    )
    resources = call(test_client, headers["boss"], "GET", f"/plans/{plan}/customer-resources")

    nodes = {n["path"]: n for n in attainment["nodes"]}
    assert nodes["total"]["actuals"]["revenue"] == "1000"
    assert nodes["total/employee=rep"]["attainment"]["revenue"] == "0.3333"
    assert nodes["total/employee=rep2"]["actuals"]["revenue"] == "0"
    assert nodes["total/period=2026-Q2"]["attainment"]["revenue"] == "1.0000"
    assert resources["remaining"] == "3000" and resources["deals_to_win"] == 3
    assert resources["stages"][6]["needed"] == 3


def test_monitoring_and_conversion_reports(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    test_client, headers = client
    won_deal(test_client, headers["rep"], "rep", "1000")
    customer = call(
        test_client, headers["rep"], "POST", "/customers", {"name": "Nobody's", "source": "fair"}
    )
    assigned = call(
        test_client,
        headers["boss"],
        "POST",
        f"/customers/{customer['aggregate_id']}/assignment",
        {"owner_id": "rep2", "reason": "territory"},
    )
    logged = call(
        test_client,
        headers["rep2"],
        "POST",
        f"/customers/{customer['aggregate_id']}/activities",
        {"kind": "visit", "summary": "first visit"},
    )
    position = logged["position"]

    transfers = call(
        test_client,
        headers["boss"],
        "GET",
        "/monitoring/ownership-transfers",
        min_position=position,
    )
    activity = call(test_client, headers["boss"], "GET", "/monitoring/activity", person="rep2")
    unowned = call(test_client, headers["boss"], "GET", "/monitoring/unowned-customers")
    conversion = call(
        test_client, headers["boss"], "GET", "/funnel/conversion", min_position=position
    )

    assert transfers["items"][0]["to_owner"] == "rep2"
    assert transfers["items"][0]["position"] == assigned["position"]
    assert activity[0]["by_kind"] == {"visit": 1}
    assert unowned["items"] == [] and unowned["next_cursor"] is None
    assert conversion["win_rate"] == "1.0000"
    assert conversion["cohorts"][0]["reached"]["8"] == 1
    assert conversion["sources"][0]["source"] == "referral"


def test_a_deal_sent_back_for_nurturing_is_reported_apart_from_the_funnel(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    test_client, headers = client
    boss = headers["boss"]
    customer = call(test_client, boss, "POST", "/customers", {"name": "Nurtured", "source": "web"})
    deal = call(
        test_client,
        boss,
        "POST",
        "/opportunities",
        {
            "customer_id": customer["aggregate_id"],
            "owner_id": "rep",
            "title": "Too early",
            "source": "campaign",
            "amount": "4000",
            "expected_close": "2026-09-30",
            "product": "arm",
            "region": "east",
        },
    )["aggregate_id"]
    not_yet = {criterion: False for criterion in QUALIFICATION_CRITERIA}
    sent_back = call(
        test_client,
        boss,
        "POST",
        f"/opportunities/{deal}/disqualification",
        {"criteria": not_yet, "reason": "no budget this year"},
    )

    nurturing = call(test_client, boss, "GET", "/funnel", min_position=sent_back["position"])
    in_q3 = call(test_client, boss, "GET", "/funnel", region="east", close_period="2026-Q3")
    health = call(test_client, boss, "GET", "/funnel/health")
    conversion = call(test_client, boss, "GET", "/funnel/conversion")
    requalified = call(
        test_client,
        boss,
        "POST",
        f"/opportunities/{deal}/qualification",
        {"criteria": ALL_MET},
    )
    back = call(test_client, boss, "GET", "/funnel", min_position=requalified["position"])

    assert (nurturing["open_count"], nurturing["stages"][0]["count"]) == (0, 0)
    assert (nurturing["nurturing_count"], nurturing["nurturing_amount"]) == (1, "4000")
    assert (in_q3["open_count"], in_q3["nurturing_count"]) == (0, 1)
    assert health["stages"][0]["count"] == 0
    assert (conversion["open_deals"], conversion["nurturing_deals"]) == (0, 1)
    assert (back["open_count"], back["stages"][0]["amount"], back["nurturing_count"]) == (
        1,
        "4000",
        0,
    )
