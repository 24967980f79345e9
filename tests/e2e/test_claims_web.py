"""The auditor's page verifies the whole ledger with its claims: a forged claim shows."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from commands.ledger import SalesLedger
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from services.web.session import SESSION_COOKIE
from tests.conftest import build_team


@pytest.fixture
def auditor(tmp_path: Path) -> Iterator[tuple[TestClient, SalesLedger, Settings]]:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    build_team(ledger)
    ledger.register_customer(name="Acme", source="web", email="a@acme.example", actor="rep1")
    token = ledger.issue_token("auditor", actor="admin", command_id="t-1")[1]
    with TestClient(create_app(settings, ledger)) as client:
        client.cookies.set(SESSION_COOKIE, token)
        yield client, ledger, settings
    ledger.close()


def test_the_audit_page_shows_a_forged_claim(
    auditor: tuple[TestClient, SalesLedger, Settings],
) -> None:
    client, _, settings = auditor
    page = client.get("/web/audit", params={"verify": "true"})
    assert page.status_code == 200
    assert "claims intact: each of" in page.text
    digest = hashlib.sha256(b"sl_forged").hexdigest()
    with sqlite3.connect(settings.sqlite_path) as conn:
        conn.execute("INSERT INTO ledger_claims (claim, value) VALUES (?, 'admin')",
                     (f"token:{digest}",))
    page = client.get("/web/audit", params={"verify": "true"})
    assert f"BROKEN: claim token:{digest} -&gt; admin" in page.text
