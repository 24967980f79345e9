"""Departures: the holdings of a person who leaves pass to a named successor in the same
command, or stay flagged in monitoring until a manager reassigns them in bulk (HTTP and
CLI). On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.customer import Customer
from aggregates.opportunity import Opportunity
from commands.ledger import SalesLedger
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.cli import main
from services.settings import Settings
from tests.conftest import build_team


@dataclass
class World:
    client: TestClient
    ledger: SalesLedger
    headers: dict[str, dict[str, str]]
    customer: str
    deals: list[str]

    def call(self, actor: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = self.client.request(method, path, json=body, headers=self.headers[actor])
        return response.status_code, response.json()

    def owners(self) -> set[str | None]:
        return {self.ledger.read(Opportunity, d).owner_id for d in self.deals} | {
            self.ledger.read(Customer, self.customer).owner_id
        }


def holdings(ledger: SalesLedger) -> tuple[str, list[str]]:
    customer = ledger.register_customer(
        name="Acme", source="web", owner_id="rep1", actor="rep1"
    ).aggregate_id
    deals = [
        ledger.open_opportunity(
            customer_id=customer,
            owner_id="rep1",
            title=f"deal {n}",
            source="web",
            amount=Decimal(1000 * n),
            expected_close=date(2026, 9, 1),
            product="erp",
            region="north",
            actor="rep1",
        ).aggregate_id
        for n in (1, 2)
    ]
    return customer, deals


@pytest.fixture
def world(store_settings: Settings) -> Iterator[World]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    customer, deals = holdings(ledger)
    headers = {
        p: {"Authorization": f"Bearer {ledger.issue_token(p, actor='admin')[1]}"}
        for p in ("admin", "mgr", "other-mgr", "rep3")
    }
    with TestClient(create_app(store_settings, ledger, project_in_process=True)) as client:
        yield World(client, ledger, headers, customer, deals)
    ledger.close()


def test_a_departure_passes_the_holdings_to_the_successor_in_one_command(world: World) -> None:
    status, body = world.call(
        "admin",
        "POST",
        "/people/rep1/departure",
        {"reason": "moved to a competitor", "successor_id": "rep2"},
    )
    assert status == 200, body
    assert world.owners() == {"rep2"}
    assert not world.ledger.organisation().is_active("rep1")
    _, transfers = world.call(
        "mgr", "GET", f"/monitoring/ownership-transfers?min_position={body['position']}"
    )
    assert len(transfers["items"]) == 3
    assert all("moved to a competitor" in t["reason"] for t in transfers["items"])


def test_holdings_left_behind_are_flagged_until_a_manager_reassigns_them(world: World) -> None:
    status, body = world.call("admin", "POST", "/people/rep1/departure", {"reason": "left"})
    assert status == 200, body
    flagged = f"/monitoring/departed-holdings?min_position={body['position']}"
    status, rows = world.call("mgr", "GET", flagged)
    assert status == 200 and len(rows) == 3 and {r["owner_id"] for r in rows} == {"rep1"}
    assert world.call("other-mgr", "GET", flagged)[1] == []
    move = {"successor_id": "rep2", "reason": "rep1 left"}
    assert world.call("rep3", "POST", "/people/rep1/reassignment", move)[0] == 403
    status, body = world.call("mgr", "POST", "/people/rep1/reassignment", move)
    assert status == 200, body
    assert world.owners() == {"rep2"}
    done = f"/monitoring/departed-holdings?min_position={body['position']}"
    assert world.call("mgr", "GET", done)[1] == []


def test_the_cli_reassigns_in_bulk(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = build_ledger(sqlite_settings)
    build_team(ledger)
    customer, deals = holdings(ledger)
    for key, value in sqlite_settings.event_store_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LEDGER_STORE", "sqlite")
    monkeypatch.setenv("LEDGER_SQLITE_PATH", sqlite_settings.sqlite_path)
    code = main(["reassign", "rep1", "rep2", "--reason", "territory change", "--actor", "mgr"])
    assert code == 0, capsys.readouterr().out
    assert "2 deals and 1 customers of rep1 passed to rep2" in capsys.readouterr().out
    assert {ledger.read(Opportunity, d).owner_id for d in deals} == {"rep2"}
    assert ledger.read(Customer, customer).owner_id == "rep2"
