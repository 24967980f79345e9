"""Shared fixtures: a ledger on a fresh embedded SQLite file or a fresh PostgreSQL database.

PostgreSQL comes from the POSTGRES_* environment (scripts/test starts it); when it is
unreachable, tests that need it fail loudly rather than skip.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from aggregates.organisation import Role
from commands.ledger import SalesLedger
from services.settings import Settings


def wait_for_read_horizon(ledger: SalesLedger, timeout: float = 30.0) -> None:
    """Block until everything committed is readable by followers (see persistence.py)."""
    deadline = time.monotonic() + timeout
    target = ledger.recorder.max_committed_notification_id()  # type: ignore[attr-defined]
    while (ledger.recorder.max_notification_id() or 0) < target:
        if time.monotonic() > deadline:
            pytest.fail(f"the read horizon did not reach position {target} in {timeout} s")
        time.sleep(0.05)


def postgres_admin_conninfo(dbname: str | None = None) -> str:
    """The test server (POSTGRES_*), on ``dbname`` or the suite's own database."""
    return Settings(store="postgres").postgres_conninfo(
        dbname or os.environ.get("POSTGRES_DBNAME", "ledger_test")
    )


@pytest.fixture
def postgres_settings() -> Iterator[Settings]:
    """Settings for a brand-new PostgreSQL database, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(postgres_admin_conninfo(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable (run the tests with scripts/test): {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    settings = Settings(store="postgres", postgres_dbname=name)
    yield settings
    with psycopg.connect(postgres_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_settings(request: pytest.FixtureRequest) -> Settings:
    """The same test on the embedded default and on real PostgreSQL."""
    name = "sqlite_settings" if request.param == "sqlite" else "postgres_settings"
    settings: Settings = request.getfixturevalue(name)
    return settings


def build_team(ledger: SalesLedger) -> None:
    """admin; vp → manager → two reps; an auditor."""
    ledger.set_up_organisation("Test Co", "admin", "Ada Admin")
    ledger.add_person("vp", "Vic", Role.MANAGER, None, actor="admin")
    ledger.add_person("mgr", "Meg", Role.MANAGER, "vp", actor="admin")
    ledger.add_person("rep1", "Ray", Role.SALES_REP, "mgr", actor="admin")
    ledger.add_person("rep2", "Rita", Role.SALES_REP, "mgr", actor="admin")
    ledger.add_person("other-mgr", "Otto", Role.MANAGER, "vp", actor="admin")
    ledger.add_person("rep3", "Rob", Role.SALES_REP, "other-mgr", actor="admin")
    ledger.add_person("auditor", "Aud", Role.AUDITOR, None, actor="admin")


@pytest.fixture
def ledger(store_settings: Settings) -> Iterator[SalesLedger]:
    """A ledger with a small organisation, on SQLite and on PostgreSQL."""
    app = SalesLedger(env=store_settings.event_store_env())
    build_team(app)
    yield app
    app.close()
