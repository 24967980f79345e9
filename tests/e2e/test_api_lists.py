"""A new user's first steps, on SQLite and PostgreSQL: list my deals, find a customer by
another way of writing its phone number, page through thousands of deals with the
cursor, download a list as CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.audit_log import AuditLog, audit_log_id
from commands.ledger import SalesLedger
from projections.runner import wait_for_position
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

PEOPLE = ("rep1", "rep2", "rep3", "mgr", "auditor")


@dataclass
class World:
    client: TestClient
    ledger: SalesLedger
    tokens: dict[str, str]

    def get(self, person: str, path: str, expect: int = 200, **params: Any) -> Any:
        response = self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {self.tokens[person]}"}
        )
        assert response.status_code == expect, response.text
        return response

    def settled(self) -> int:
        """The ledger's last position, once the list projections have applied it (a busy
        machine may take longer than a query's own 5 s wait)."""
        position = int(self.ledger.store.max_committed_notification_id())
        context = self.client.app.state.context  # type: ignore[attr-defined]
        for projection in ("lists", "funnel"):
            wait_for_position(context.database, projection, position, 120, context.worker.wake)
        return position


@pytest.fixture
def world(store_settings: Settings) -> Iterator[World]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    tokens = {p: ledger.issue_token(p, actor="admin")[1] for p in PEOPLE}
    app = create_app(store_settings, ledger, project_in_process=True)
    with TestClient(app) as client:
        yield World(client, ledger, tokens)
    ledger.close()


def customer(ledger: SalesLedger, name: str, owner: str, **fields: Any) -> str:
    return ledger.register_customer(
        name=name, source="web", owner_id=owner, actor=owner, **fields
    ).aggregate_id


def deal(
    ledger: SalesLedger,
    customer_id: str,
    owner: str,
    amount: str = "1000",
    close: date = date(2026, 6, 30),
    title: str = "deal",
) -> str:
    return ledger.open_opportunity(
        customer_id=customer_id,
        owner_id=owner,
        title=title,
        source="web",
        amount=Decimal(amount),
        expected_close=close,
        product="arm",
        region="east",
        actor=owner,
    ).aggregate_id


def ids(response: Any) -> set[str]:
    return {item["opportunity_id"] for item in response.json()["items"]}


def test_a_rep_lists_their_deals_and_sees_nobody_elses(world: World) -> None:
    ledger = world.ledger
    acme = customer(ledger, "Acme", "rep1")
    mine = {deal(ledger, acme, "rep1", amount=str(1000 * n)) for n in (1, 2, 3)}
    beta = customer(ledger, "Beta", "rep2")
    theirs = deal(ledger, beta, "rep2")
    shared = deal(ledger, beta, "rep2", title="shared")
    ledger.add_team_member(shared, "rep1", "engineer", actor="rep2")
    gamma = customer(ledger, "Gamma", "rep3")
    elsewhere = deal(ledger, gamma, "rep3")
    at = world.settled()

    my_deals = world.get("rep1", "/opportunities", owner="me", min_position=at)
    assert ids(my_deals) == mine
    assert all(isinstance(item["amount"], str) for item in my_deals.json()["items"])
    assert ids(world.get("rep1", "/opportunities")) == mine | {shared}
    assert ids(world.get("rep1", "/opportunities", team_member="me")) == {shared}
    assert ids(world.get("rep3", "/opportunities")) == {elsewhere}
    assert ids(world.get("rep3", "/opportunities", owner="rep1")) == set()
    assert ids(world.get("mgr", "/opportunities")) == mine | {theirs, shared}
    assert len(ids(world.get("auditor", "/opportunities"))) == 6
    big = world.get("rep1", "/opportunities", owner="me", amount_min="2000", sort="-amount")
    assert [i["amount"] for i in big.json()["items"]] == ["3000", "2000"]
    assert ids(world.get("rep1", "/opportunities", close_from="2026-07-01")) == set()
    assert len(ids(world.get("rep1", "/opportunities", close_to="2026-06-30"))) == 4
    assert ids(world.get("rep1", "/opportunities", status="won")) == set()
    assert ids(world.get("rep1", "/opportunities", stale="true", stale_days=1)) == set()
    assert len(ids(world.get("rep1", "/opportunities", stale="false", stale_days=1))) == 4
    customers = world.get("rep3", "/customers").json()["items"]
    assert [c["name"] for c in customers] == ["Gamma"]


def test_a_customer_is_found_by_a_variant_of_its_phone_number(world: World) -> None:
    ledger = world.ledger
    bright = customer(
        ledger,
        "Shanghai Bright Machinery Co.",
        "rep1",
        phone="+86 21 5555 0100",
        tax_id="91310000-MA1FL0001X",
        email="Purchasing@Bright.example",
    )
    customer(ledger, "Other Trading Ltd", "rep1", phone="+86 21 6666 0200")
    at = world.settled()

    def found(**params: Any) -> list[str]:
        response = world.get("rep1", "/customers", min_position=at, **params)
        return [item["customer_id"] for item in response.json()["items"]]

    for variant in ("0086-21-5555-0100", "(21) 5555 0100", "+86215555 0100", "5555 0100"):
        assert found(q=variant) == [bright], variant
    assert found(q="91310000 ma1fl0001x") == [bright]
    assert found(q="purchasing@bright") == [bright]
    assert found(q="shanghai bri") == [bright]
    assert found(q="Shangai Brigt Machinery", fuzzy="true")[0] == bright
    assert found(q="nobody at all") == []
    assert world.get("rep3", "/customers", q="5555 0100").json()["items"] == []


def test_three_thousand_deals_page_through_with_the_cursor(world: World) -> None:
    ledger = world.ledger
    acme = customer(ledger, "Acme", "rep1")
    start = date(2026, 1, 1)
    closing = [start + timedelta(days=n % 365) for n in range(3000)]
    opened = {deal(ledger, acme, "rep1", close=day) for day in closing}
    at = world.settled()
    first = world.get("rep1", "/opportunities", limit=500, min_position=at)
    seen: list[tuple[str, str]] = []
    response, pages = first, 0
    while True:
        pages += 1
        body = response.json()
        seen += [(i["expected_close"], i["opportunity_id"]) for i in body["items"]]
        link = response.headers.get("Link")
        if link is None:
            assert body["next_cursor"] is None
            break
        url = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert url is not None, link
        response = world.client.get(
            url.group(1), headers={"Authorization": f"Bearer {world.tokens['rep1']}"}
        )
        assert response.status_code == 200, response.text
    assert pages == 6
    assert {deal_id for _, deal_id in seen} == opened
    assert seen == sorted(seen)
    bad = world.get("rep1", "/opportunities", expect=422, cursor="not-a-cursor").json()
    assert bad["invalid_params"][0]["name"] == "cursor"
    other_sort = world.get(
        "rep1", "/opportunities", expect=422, sort="-amount", cursor=first.json()["next_cursor"]
    )
    assert other_sort.headers["content-type"].startswith("application/problem+json")


def test_a_list_downloads_as_csv_and_the_download_is_recorded(world: World) -> None:
    ledger = world.ledger
    acme = customer(ledger, "Acme", "rep1")
    for n in range(600):
        deal(ledger, acme, "rep1", title=f"=deal {n}")
    at = world.settled()
    by_accept = world.client.get(
        "/opportunities",
        params={"min_position": at, "owner": "me"},
        headers={"Authorization": f"Bearer {world.tokens['rep1']}", "Accept": "text/csv"},
    )
    assert by_accept.status_code == 200
    assert by_accept.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(by_accept.text)))
    assert len(rows) == 600
    assert rows[0]["amount"] == "1000" and rows[0]["title"].startswith("'=deal")
    by_format = world.get("rep1", "/customers", format="csv")
    assert list(csv.DictReader(io.StringIO(by_format.text)))[0]["name"] == "Acme"
    funnel = world.get("rep1", "/funnel", format="csv")
    assert list(csv.DictReader(io.StringIO(funnel.text)))[0]["stage"] == "1"
    log = ledger.read(AuditLog, audit_log_id("rep1", datetime.now(UTC).date()))
    what = [entry[0] for entry in log.exports]
    assert what == ["GET /opportunities (csv)", "GET /customers (csv)", "GET /funnel (csv)"]
    assert log.exports[0][1]["owner"] == "me"
