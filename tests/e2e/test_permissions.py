"""Role × endpoint × expected status, for every endpoint of the app.

The table names each route's allowed actors for records owned by ``rep1`` (who reports
to ``mgr``); every other actor must get 403, and everyone without a token 401. The test
fails when the app has a route the table does not list, so no endpoint is missed.
A request the policy allows may still fail later (422 for the empty body, 404 for a
made-up id): the table is about the policy, so "allowed" means neither 401 nor 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.audit_log import AuditLog, audit_log_id
from commands.ledger import SalesLedger
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

ACTORS = ("rep1", "rep3", "mgr", "other-mgr", "auditor", "admin")
EVERYONE = frozenset(ACTORS)
WRITERS = EVERYONE - {"auditor"}
ADMIN = frozenset({"admin"})
AUDIT = frozenset({"auditor", "admin"})
READ_REP1 = frozenset({"rep1", "mgr", "auditor", "admin"})
CHANGE_REP1 = frozenset({"rep1", "mgr", "admin"})

DEAL_CHANGES = (
    "qualification",
    "disqualification",
    "evaluation",
    "stage",
    "owner",
    "team",
    "team/{person_id}/removal",
    "bid-details",
    "amount",
    "close-date",
    "activities",
    "win",
    "loss",
    "reopening",
)

EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/people"): EVERYONE,
    ("GET", "/opportunities"): EVERYONE,
    ("GET", "/customers"): EVERYONE,
    ("GET", "/plans"): EVERYONE,
    ("GET", "/forecasts"): EVERYONE,
    ("POST", "/people"): ADMIN,
    ("POST", "/people/{person_id}/role"): ADMIN,
    ("POST", "/people/{person_id}/manager"): ADMIN,
    ("POST", "/people/{person_id}/departure"): ADMIN,
    ("POST", "/people/{person_id}/reassignment"): WRITERS,
    ("POST", "/tokens"): ADMIN,
    ("GET", "/organisation/configuration"): EVERYONE,
    ("POST", "/organisation/configuration"): ADMIN,
    ("DELETE", "/tokens/{token_id}"): ADMIN,
    ("POST", "/tokens/{token_id}/rotation"): ADMIN,
    ("POST", "/customers"): WRITERS,
    ("GET", "/customers/{customer_id}"): READ_REP1,
    ("POST", "/customers/{customer_id}/profile"): CHANGE_REP1,
    ("POST", "/customers/{customer_id}/classification"): CHANGE_REP1,
    ("POST", "/customers/{customer_id}/assignment"): CHANGE_REP1,
    ("POST", "/customers/{customer_id}/activities"): CHANGE_REP1,
    ("POST", "/customers/{customer_id}/erasure"): ADMIN,
    ("POST", "/opportunities"): WRITERS,
    ("GET", "/opportunities/{opportunity_id}"): READ_REP1,
    ("GET", "/opportunities/{opportunity_id}/history"): READ_REP1,
    **{("POST", f"/opportunities/{{opportunity_id}}/{a}"): CHANGE_REP1 for a in DEAL_CHANGES},
    ("POST", "/plans"): WRITERS,
    ("GET", "/plans/{plan_id}"): EVERYONE,
    ("POST", "/plans/{plan_id}/decompositions"): WRITERS,
    ("POST", "/plans/{plan_id}/revisions"): WRITERS,
    ("POST", "/plans/{plan_id}/proposals"): WRITERS,
    ("POST", "/plans/{plan_id}/approval"): WRITERS,
    ("GET", "/plans/{plan_id}/attainment"): EVERYONE,
    ("GET", "/plans/{plan_id}/customer-resources"): EVERYONE,
    ("POST", "/forecasts/{period}/submission"): WRITERS,
    ("POST", "/forecasts/{period}/people/{person_id}/revisions"): WRITERS,
    ("POST", "/forecasts/{period}/people/{person_id}/quota"): WRITERS,
    ("GET", "/forecasts/{period}"): EVERYONE,
    ("GET", "/funnel"): EVERYONE,
    ("GET", "/funnel/health"): EVERYONE,
    ("GET", "/funnel/conversion"): EVERYONE,
    ("GET", "/pipeline/changes"): EVERYONE,
    ("GET", "/pipeline/flags"): EVERYONE,
    ("GET", "/win-loss"): EVERYONE,
    ("GET", "/forecasts/{period}/errors"): EVERYONE,
    ("POST", "/imports/{kind}"): ADMIN,
    ("GET", "/forecast-accuracy"): EVERYONE,
    **{
        ("GET", f"/monitoring/{v}"): EVERYONE
        for v in (
            "stale-deals",
            "slipped-deals",
            "activity",
            "parked",
            "unowned-customers",
            "ownership-transfers",
            "departed-holdings",
        )
    },
    ("GET", "/audit"): AUDIT,
    ("GET", "/aggregates/{aggregate_id}"): READ_REP1,
    ("GET", "/aggregates/{aggregate_id}/field-history"): READ_REP1,
    ("GET", "/integrity/heads/latest"): AUDIT,
    ("GET", "/integrity/heads/{tree_size}"): AUDIT,
    ("GET", "/integrity/inclusion"): AUDIT,
    ("GET", "/integrity/consistency"): AUDIT,
    ("GET", "/integrity/bundles/{aggregate_id}"): AUDIT,
}


@dataclass
class World:
    """The app, a token per actor, and records owned by rep1."""

    client: TestClient
    ledger: SalesLedger
    tokens: dict[str, str]
    path_values: dict[str, str]

    def call(self, method: str, path: str, actor: str | None) -> tuple[int, dict[str, object]]:
        url = path.format(
            **{k: self.path_values[k] for k in self.path_values if "{" + k + "}" in path}
        )
        headers = {"Authorization": f"Bearer {self.tokens[actor]}"} if actor else {}
        kwargs: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        response = self.client.request(method, url, headers=headers, **kwargs)
        return response.status_code, response.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path: Path = tmp_path_factory.mktemp("permissions") / "ledger.db"
    settings = Settings(store="sqlite", sqlite_path=str(path))
    ledger = build_ledger(settings)
    build_team(ledger)
    customer = ledger.register_customer(name="Acme", source="web", owner_id="rep1", actor="rep1")
    deal = ledger.open_opportunity(
        customer_id=customer.aggregate_id,
        owner_id="rep1",
        title="ERP",
        source="web",
        amount=Decimal("1000"),
        expected_close=date(2026, 9, 1),
        product="erp",
        region="north",
        actor="rep1",
    )
    tokens = {actor: ledger.issue_token(actor, actor="admin")[1] for actor in ACTORS}
    values = {
        "customer_id": customer.aggregate_id,
        "opportunity_id": deal.aggregate_id,
        "aggregate_id": deal.aggregate_id,
        "person_id": "rep2",
        "plan_id": str(uuid.uuid4()),
        "period": "2026-Q3",
        "token_id": "no-such-token",
        "kind": "customers",
        "tree_size": "1",
    }
    with TestClient(create_app(settings, ledger)) as client:
        yield World(client, ledger, tokens, values)


def app_endpoints(world: World) -> set[tuple[str, str]]:
    schema = world.client.app.openapi()  # type: ignore[attr-defined]
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }


PUBLIC = {
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/schemas"),
    ("GET", "/schemas/asyncapi"),
    ("GET", "/schemas/{ce_type}"),
}
"""Probes, metrics and the published contracts: answered without a token (no records)."""


def test_the_table_lists_every_endpoint_of_the_app(world: World) -> None:
    assert app_endpoints(world) - PUBLIC == set(EXPECTED)
    assert app_endpoints(world) >= PUBLIC


@pytest.mark.parametrize("path", ["/livez", "/metrics", "/schemas", "/schemas/asyncapi"])
def test_probes_and_contracts_need_no_token(world: World, path: str) -> None:
    assert world.client.get(path).status_code == 200


@pytest.mark.parametrize("endpoint", sorted(EXPECTED), ids=lambda e: f"{e[0]} {e[1]}")
@pytest.mark.parametrize("actor", ACTORS)
def test_role_endpoint_status(world: World, endpoint: tuple[str, str], actor: str) -> None:
    method, path = endpoint
    status, body = world.call(method, path, actor)
    if actor in EXPECTED[endpoint]:
        assert status not in (401, 403), (status, body)
    else:
        assert status == 403, (status, body)


@pytest.mark.parametrize("endpoint", sorted(EXPECTED), ids=lambda e: f"{e[0]} {e[1]}")
def test_no_token_is_401(world: World, endpoint: tuple[str, str]) -> None:
    status, _ = world.call(*endpoint, actor=None)
    assert status == 401


SEE_REP1 = frozenset({"rep1", "mgr", "auditor", "admin"})
SEE_MGR_TEAM = frozenset({"mgr", "auditor", "admin"})

QUERY_EXPECTED: dict[tuple[str, str, str], frozenset[str]] = {
    **{
        (path, parameter, "rep1"): SEE_REP1
        for path, parameter in (
            ("/funnel", "owner"),
            ("/funnel/health", "owner"),
            ("/funnel/conversion", "owner"),
            ("/monitoring/stale-deals", "owner"),
            ("/monitoring/slipped-deals", "owner"),
            ("/monitoring/activity", "person"),
            ("/monitoring/ownership-transfers", "person"),
        )
    },
    **{
        (path, "team", "mgr"): SEE_MGR_TEAM
        for path in (
            "/funnel",
            "/funnel/health",
            "/funnel/conversion",
            "/monitoring/stale-deals",
            "/monitoring/slipped-deals",
            "/monitoring/activity",
        )
    },
}
"""Query parameters naming a person or a subtree: who may name ``rep1`` or ``mgr``'s team."""


@pytest.mark.parametrize("query", sorted(QUERY_EXPECTED), ids=lambda q: f"{q[0]}?{q[1]}={q[2]}")
@pytest.mark.parametrize("actor", ACTORS)
def test_role_query_parameter_status(world: World, query: tuple[str, str, str], actor: str) -> None:
    path, parameter, person = query
    headers = {"Authorization": f"Bearer {world.tokens[actor]}"}
    response = world.client.get(path, params={parameter: person}, headers=headers)
    if actor in QUERY_EXPECTED[query]:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403, response.text


@pytest.mark.parametrize(
    "path", ["/funnel", "/monitoring/stale-deals", "/monitoring/slipped-deals"]
)
def test_me_names_the_caller_in_every_person_parameter(world: World, path: str) -> None:
    def get(actor: str, **params: str) -> object:
        headers = {"Authorization": f"Bearer {world.tokens[actor]}"}
        response = world.client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    assert get("rep1", owner="me") == get("rep1", owner="rep1")
    assert get("mgr", team="me") == get("mgr", team="mgr")


def test_a_refusal_does_not_reveal_whether_the_record_exists(world: World) -> None:
    existing = world.path_values["opportunity_id"]
    answers = {
        world.call("GET", f"/opportunities/{record}", "rep3").__repr__()
        for record in (existing, str(uuid.uuid4()), "not-a-uuid")
    }
    assert len(answers) == 1 and "403" in answers.pop()
    assert world.call("POST", f"/customers/{uuid.uuid4()}/activities", "rep3")[0] == 403
    assert world.call("GET", f"/opportunities/{uuid.uuid4()}", "auditor")[0] == 404


def test_bulk_reads_are_recorded_with_who_and_what(world: World) -> None:
    assert world.call("GET", "/audit", "auditor")[0] == 200
    log = world.ledger.load(AuditLog, audit_log_id("auditor", datetime.now(UTC).date()))
    assert ("GET /audit", {}) in log.exports
