"""A token outlives nobody: once its person leaves, it authenticates no more (401)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings


def test_a_departed_persons_token_is_refused(tmp_path: Path) -> None:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    ledger.set_up_organisation("Co", "admin", "Admin")
    ledger.add_person("mgr", "Meg", "manager", None, actor="admin")
    ledger.add_person("rep", "Ray", "sales_rep", "mgr", actor="admin")
    _, token = ledger.issue_token("rep", actor="admin")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, ledger, project_in_process=False)) as client:
        assert client.get("/people", headers=headers).status_code == 200
        ledger.remove_person("rep", "left the company", actor="admin")
        refused = client.get("/people", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
