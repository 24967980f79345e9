"""The HTTP conventions clients expect: problem details, ETag and If-Match, idempotency
keys bound to their request, time parameters by one rule, a body limit, offline docs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

DEAL = {
    "owner_id": "rep1",
    "title": "Line 3",
    "source": "web",
    "amount": "2500.50",
    "expected_close": "2026-06-30",
    "product": "arm",
    "region": "east",
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Settings]]:
    settings = Settings(
        store="sqlite",
        sqlite_path=str(tmp_path / "ledger.db"),
        max_body_bytes=4096,
        time_zone="Asia/Shanghai",
    )
    ledger = build_ledger(settings)
    build_team(ledger)
    _, token = ledger.issue_token("rep1", actor="admin")
    with TestClient(create_app(settings, ledger)) as client:
        yield client, {"Authorization": f"Bearer {token}"}, settings
    ledger.close()


def open_deal(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    customer = client.post(
        "/customers", json={"name": "Acme", "source": "web", "owner_id": "rep1"}, headers=headers
    ).json()
    response = client.post(
        "/opportunities", json={**DEAL, "customer_id": customer["aggregate_id"]}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_errors_are_problem_details(api: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, headers, _ = api
    missing = client.get("/funnel")
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 401 and missing.json()["type"].endswith("unauthenticated")
    client.post("/customers", json={"name": "Acme Ltd", "source": "web"}, headers=headers)
    duplicate = client.post("/customers", json={"name": "ACME", "source": "web"}, headers=headers)
    body = duplicate.json()
    assert duplicate.status_code == 409 and body["existing_customer_id"]
    assert {"type", "title", "status", "detail"} <= set(body) and body["title"] == "Conflict"


def test_etag_and_if_match(api: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, headers, _ = api
    deal = open_deal(client, headers)
    path = f"/opportunities/{deal['aggregate_id']}"
    current = client.get(path, headers=headers)
    assert current.headers["ETag"] == '"1"' and current.json()["state"]["amount"] == "2500.50"
    stale = client.post(
        f"{path}/activities",
        json={"kind": "call", "summary": "hi"},
        headers={**headers, "If-Match": '"7"'},
    )
    assert stale.status_code == 412 and stale.json()["current_version"] == 1
    fresh = client.post(
        f"{path}/activities",
        json={"kind": "call", "summary": "hi"},
        headers={**headers, "If-Match": current.headers["ETag"]},
    )
    assert fresh.status_code == 201 and fresh.json()["version"] == 2
    assert client.get(path, headers=headers).headers["ETag"] == '"2"'


def test_an_idempotency_key_is_bound_to_its_request(
    api: tuple[TestClient, dict[str, str], Settings],
) -> None:
    client, headers, _ = api
    keyed = {**headers, "Idempotency-Key": "k-1"}
    first = client.post("/customers", json={"name": "Once", "source": "web"}, headers=keyed)
    again = client.post("/customers", json={"source": "web", "name": "Once"}, headers=keyed)
    other = client.post("/customers", json={"name": "Twice", "source": "web"}, headers=keyed)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"


def test_time_parameters_follow_one_rule(api: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, headers, _ = api
    deal = open_deal(client, headers)
    path = f"/opportunities/{deal['aggregate_id']}"
    for moment in ("2999-12-05", "2999-12-05T10:00", "2999-12-05T10:00:00+08:00", "2999-12-05Z"):
        response = client.get(path, params={"as_of": moment}, headers=headers)
        expected = 422 if moment.endswith("5Z") else 200
        assert response.status_code == expected, (moment, response.text)
    early = client.get(path, params={"as_of": "2000-01-01"}, headers=headers)
    assert early.status_code == 404
    bad = client.get("/funnel", params={"as_of": "yesterday"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["invalid_params"][0]["name"] == "as_of"
    shown = client.get(path, params={"as_of": "2999-12-05T10:00"}, headers=headers).json()
    assert shown["as_of"].endswith("+08:00")
    history = client.get(f"{path}/history", params={"as_of": "2999-12-05"}, headers=headers)
    assert history.status_code == 200 and len(history.json()) == 1


def test_the_cli_reads_as_of_by_the_same_rule(
    api: tuple[TestClient, dict[str, str], Settings],
) -> None:
    client, headers, settings = api
    deal = open_deal(client, headers)
    env = {"LEDGER_STORE": "sqlite", "LEDGER_SQLITE_PATH": settings.sqlite_path, "PATH": ""}
    command = [sys.executable, "-m", "services.cli", "history", deal["aggregate_id"]]
    shown = subprocess.run([*command, "--as-of", "2999-12-05"], env=env, capture_output=True)
    assert shown.returncode == 0 and b"OpportunityOpened" in shown.stdout, shown.stderr
    refused = subprocess.run([*command, "--as-of", "soon"], env=env, capture_output=True)
    assert refused.returncode == 2 and b"--as-of must be" in refused.stderr


def test_a_body_over_the_limit_is_refused_with_413(
    api: tuple[TestClient, dict[str, str], Settings],
) -> None:
    client, headers, _ = api
    big = {"name": "Big", "source": "web", "profile": {"notes": "x" * 5000}}
    refused = client.post("/customers", json=big, headers=headers)
    assert refused.status_code == 413 and refused.json()["error"] == "body_too_large"
    assert client.get("/customers", headers=headers).json()["items"] == []


def test_docs_are_served_without_a_cdn(api: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, _, _ = api
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn" not in html and "/docs-assets/" in html
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/redoc.standalone.js").status_code == 200


def test_the_openapi_documents_every_status_with_the_problem_shape(
    api: tuple[TestClient, dict[str, str], Settings],
) -> None:
    client, headers, _ = api
    spec = client.get("/openapi.json").json()
    problem_schema = dict(spec["components"]["schemas"]["Problem"])
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            documented = set(operation["responses"])
            assert {"401", "403", "404", "422", "503"} <= documented, (method, path)
            if method == "post":
                assert {"409", "412", "413"} <= documented, (method, path)
            content = operation["responses"]["422"]["content"]
            assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    refused = client.get("/opportunities", params={"limit": 0}, headers=headers)
    resolver_schema = {**problem_schema}
    resolver_schema["$defs"] = spec["components"]["schemas"]
    text = json.dumps(resolver_schema).replace("#/components/schemas/", "#/$defs/")
    jsonschema.validate(refused.json(), json.loads(text))
    assert refused.json()["invalid_params"][0]["name"] == "limit"
