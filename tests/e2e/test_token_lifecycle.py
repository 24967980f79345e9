"""API tokens expire, rotate, and their issuance is not replayable (shown once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

LIFETIME_SECONDS = 0.5


@pytest.fixture
def client_and_admin(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    build_team(ledger)
    with TestClient(create_app(settings, ledger)) as client:
        yield client, {}
    ledger.close()


def _works(client: TestClient, token: str) -> bool:
    response = client.get("/people", headers={"Authorization": f"Bearer {token}"})
    return bool(response.status_code != 401)


def test_tokens_expire_rotate_and_are_not_replayable(
    client_and_admin: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    client, _ = client_and_admin
    ledger = client.app.state.context.ledger  # type: ignore[attr-defined]
    _, admin_token = ledger.issue_token("admin", actor="admin")
    admin = {"Authorization": f"Bearer {admin_token}"}
    issue = {**admin, "Idempotency-Key": "issue-rep1"}
    first = client.post("/tokens", json={"person_id": "rep1"}, headers=issue)
    assert first.status_code == 201, first.text
    replay = client.post("/tokens", json={"person_id": "rep1"}, headers=issue)
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"] == "already_issued"
    rep_token = first.json()["token"]
    assert _works(client, rep_token)

    rotated = client.post(f"/tokens/{first.json()['token_id']}/rotation", headers=admin)
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["person_id"] == "rep1"
    assert not _works(client, rep_token)
    assert _works(client, rotated.json()["token"])

    short_lived = build_ledger(
        Settings(
            store="sqlite",
            sqlite_path=str(tmp_path / "ledger.db"),
            token_ttl_days=LIFETIME_SECONDS / 86400,
        )
    )
    _, brief = short_lived.issue_token("rep2", actor="admin")
    short_lived.close()
    time.sleep(LIFETIME_SECONDS + 0.1)
    assert not _works(client, brief)
    assert _works(client, rotated.json()["token"])  # 90 days by default
