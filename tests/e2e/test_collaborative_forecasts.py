"""Collaborative forecasts through the API, on SQLite and PostgreSQL: a superior's
adjustment survives the owner's resubmission, accuracy is never null, a year is its
quarters, ``as_of`` gives the actuals known then, and each caller sees their own people."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.evaluation import QUALIFICATION_CRITERIA
from commands.ledger import SalesLedger
from events.base import recorded_at
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def open_deal(ledger: SalesLedger, customer: str, amount: str, close: date) -> str:
    return ledger.open_opportunity(
        customer_id=customer,
        owner_id="rep1",
        title=f"deal {amount}",
        source="web",
        amount=Decimal(amount),
        expected_close=close,
        product="erp",
        region="north",
        actor="rep1",
    ).aggregate_id


@pytest.fixture
def api(store_settings: Settings) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], int]]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    with recorded_at(at("2026-03-01T09:00:00")):
        customer = ledger.register_customer(
            name="Acme", source="web", owner_id="rep1", actor="rep1"
        ).aggregate_id
        big = open_deal(ledger, customer, "98000", date(2026, 6, 20))
        small = open_deal(ledger, customer, "1000", date(2026, 5, 15))
    with recorded_at(at("2026-04-01T09:00:00")):
        ledger.submit_forecast("2026-Q2", [big], actor="rep1")
    with recorded_at(at("2026-04-02T09:00:00")):
        ledger.revise_forecast("rep1", "2026-Q2", Decimal(120_000), "signs early", actor="mgr")
        ledger.set_quota("rep1", "2026-Q2", Decimal(100_000), "Q2 target", actor="mgr")
    with recorded_at(at("2026-04-03T09:00:00")):
        ledger.revise_amount(big, Decimal(999_999), "bigger scope", actor="rep1")
        ledger.submit_forecast("2026-Q2", [big], actor="rep1")
    with recorded_at(at("2026-05-20T09:00:00")):
        ledger.qualify_opportunity(small, dict.fromkeys(QUALIFICATION_CRITERIA, True), actor="rep1")
        ledger.advance_stage(small, 7, actor="rep1")
        last = ledger.win_opportunity(small, Decimal(1000), date(2026, 5, 10), actor="rep1")
    headers = {
        p: {"Authorization": f"Bearer {ledger.issue_token(p, actor='admin')[1]}"}
        for p in ("rep1", "rep2", "mgr", "vp")
    }
    with TestClient(create_app(store_settings, ledger, project_in_process=True)) as client:
        yield client, headers, int(last.position or 0)
    ledger.close()


def report(
    api: tuple[TestClient, dict[str, dict[str, str]], int], actor: str, period: str, **params: Any
) -> dict[str, Any]:
    client, headers, position = api
    response = client.get(
        f"/forecasts/{period}", params={"min_position": position, **params}, headers=headers[actor]
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["by_person"] = {p["person_id"]: p for p in body["people"]}
    return body


def test_the_adjustment_above_survives_the_resubmission_below(
    api: tuple[TestClient, dict[str, dict[str, str]], int],
) -> None:
    now = report(api, "mgr", "2026-Q2")
    rep1, mgr = now["by_person"]["rep1"], now["by_person"]["mgr"]
    assert (
        Decimal(rep1["submitted_total"]),
        Decimal(rep1["adjusted_total"]),
        rep1["adjusted_by"],
    ) == (Decimal(999_999), Decimal(120_000), "mgr")
    assert rep1["adjustment_predates_submission"] is True
    assert Decimal(mgr["rollup_adjusted"]) == 120_000
    assert Decimal(mgr["rollup_unadjusted"]) == 999_999
    assert (Decimal(rep1["quota"]), Decimal(rep1["actual"])) == (Decimal(100_000), Decimal(1000))
    assert Decimal(rep1["accuracy"]) == Decimal("0.0083")


def test_as_of_gives_the_figures_and_actuals_known_then(
    api: tuple[TestClient, dict[str, dict[str, str]], int],
) -> None:
    before_win = report(api, "mgr", "2026-Q2", as_of="2026-05-01T00:00:00Z")["by_person"]["rep1"]
    assert (Decimal(before_win["actual"]), Decimal(before_win["accuracy"])) == (
        Decimal(0),
        Decimal(0),
    )
    before = report(api, "mgr", "2026-Q2", as_of="2026-04-02T12:00:00Z")["by_person"]["rep1"]
    assert (Decimal(before["submitted_total"]), Decimal(before["adjusted_total"])) == (
        Decimal(98_000),
        Decimal(120_000),
    )
    assert before["adjustment_predates_submission"] is False


def test_a_year_is_its_quarters_and_each_caller_sees_their_people(
    api: tuple[TestClient, dict[str, dict[str, str]], int],
) -> None:
    year = report(api, "vp", "2026")
    assert year["made_of"] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert Decimal(year["by_person"]["vp"]["rollup_adjusted"]) == 120_000
    assert Decimal(year["by_person"]["rep1"]["actual"]) == 1000
    assert set(report(api, "rep2", "2026-Q2")["by_person"]) == {"rep2"}
    assert set(report(api, "mgr", "2026-Q2")["by_person"]) == {"mgr", "rep1", "rep2"}
