"""Field values through the API, on SQLite and PostgreSQL: the configured country code
makes a national phone hit the duplicate check, a profile ``phone`` is checked for
uniqueness too, configuration changes are admin events, and refusals name the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team


@pytest.fixture
def api(store_settings: Settings) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    headers = {
        p: {"Authorization": f"Bearer {ledger.issue_token(p, actor='admin')[1]}"}
        for p in ("admin", "rep1")
    }
    with TestClient(create_app(store_settings, ledger, project_in_process=False)) as client:
        yield client, headers
    ledger.close()


def post(api: Any, actor: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    client, headers = api
    response = client.post(path, json=body, headers=headers[actor])
    return response.status_code, response.json()


def test_national_phones_and_profile_phones_hit_the_duplicate_check(api: Any) -> None:
    assert (
        post(
            api,
            "rep1",
            "/organisation/configuration",
            {"changes": {"country_code": "49"}, "reason": "x"},
        )[0]
        == 403
    )
    status, _ = post(
        api,
        "admin",
        "/organisation/configuration",
        {"changes": {"country_code": "49"}, "reason": "Berlin office"},
    )
    assert status == 200
    client, headers = api
    assert (
        client.get("/organisation/configuration", headers=headers["rep1"]).json()["country_code"]
        == "49"
    )
    first = post(
        api, "rep1", "/customers", {"name": "Acme", "source": "web", "phone": "+49 30 1234567"}
    )
    assert first[0] == 201
    status, body = post(
        api, "rep1", "/customers", {"name": "Other", "source": "web", "phone": "030 1234567"}
    )
    assert (status, body["matched_on"]) == (409, "phone")
    status, body = post(
        api,
        "rep1",
        "/customers",
        {"name": "Third", "source": "web", "profile": {"phone": "030-1234567"}},
    )
    assert (status, body["matched_on"]) == (409, "phone")
    second = post(api, "rep1", "/customers", {"name": "Fourth", "source": "web"})
    status, body = post(
        api,
        "rep1",
        f"/customers/{second[1]['aggregate_id']}/profile",
        {"changes": {"phone": "0301234567"}},
    )
    assert (status, body["matched_on"]) == (409, "phone")


def test_refusals_name_the_field(api: Any) -> None:
    for body, field in (
        ({"name": "A", "source": "telepathy"}, "source"),
        ({"name": "A", "source": "web", "email": "not-an-email"}, "email"),
    ):
        status, answer = post(api, "rep1", "/customers", body)
        assert status == 422 and answer["detail"].startswith(f"{field}:"), answer
    status, answer = post(
        api, "admin", "/organisation/configuration", {"changes": {"colour": "red"}, "reason": "x"}
    )
    assert status == 422 and answer["detail"].startswith("colour:")
