"""Shared fixtures: a ledger on a fresh embedded SQLite file or a fresh PostgreSQL database.

PostgreSQL comes from the POSTGRES_* environment (scripts/test starts it); when it is
unreachable, tests that need it fail loudly rather than skip.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

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


MAINTENANCE_DB = "postgres"
"""Where databases are created and dropped from: never one of them (a test may point
``POSTGRES_DBNAME`` at the database it is about to drop)."""


def postgres_admin_conninfo(dbname: str | None = None) -> str:
    """The test server's superuser (``POSTGRES_ADMIN_USER``, trusted on loopback by
    scripts/postgres), on ``dbname`` or the suite's own database. The suite's user
    (``POSTGRES_USER``) is not a superuser, as the application's is not: this connection
    does what it may not, creating databases for it and roles, ending other sessions,
    and writing below the application as a tamper or an older version would."""
    settings = Settings(store="postgres")
    conninfo = (
        f"host={settings.postgres_host} port={settings.postgres_port} "
        f"user={os.environ.get('POSTGRES_ADMIN_USER', 'postgres')} "
        f"dbname={dbname or settings.postgres_dbname}"
    )
    password = os.environ.get("POSTGRES_ADMIN_PASSWORD")
    return f"{conninfo} password={password}" if password else conninfo


def below_the_application(
    settings: Settings,
    statement: str,
    params: tuple[Any, ...] = (),
    *,
    sqlite_triggers: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """Run ``statement`` (``%s`` placeholders) on the ledger's store as a tamperer or an
    older version would, below the application and its append-only triggers: on
    PostgreSQL as the server's superuser with the triggers off for the session, on SQLite
    with ``sqlite_triggers`` dropped. Its rows, if it returns any."""
    if settings.store == "postgres":
        with psycopg.connect(
            postgres_admin_conninfo(settings.postgres_dbname), autocommit=True
        ) as conn:
            conn.execute("SET session_replication_role = replica")
            cursor = conn.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []
    with sqlite3.connect(settings.sqlite_path) as lite:
        for trigger in sqlite_triggers:
            lite.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        return list(lite.execute(statement.replace("%s", "?"), params).fetchall())


def create_database(name: str, owner: str | None = None) -> None:
    """A new database, owned by ``owner`` (by default the suite's user): on PostgreSQL
    15 and later only a database's owner may create tables in its ``public`` schema."""
    owner = owner or Settings(store="postgres").postgres_user
    try:
        admin = psycopg.connect(
            postgres_admin_conninfo(MAINTENANCE_DB), autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable (run the tests with scripts/test): {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')


def drop_database(name: str) -> None:
    """Drop ``name``, ending the sessions still connected to it."""
    with psycopg.connect(postgres_admin_conninfo(MAINTENANCE_DB), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def provide_app_role(role: str, password: str | None = None) -> None:
    """What ``init-db --app-role ROLE [--app-password P]`` needs and the suite's user,
    which may not create roles nor set their passwords, cannot do itself: the role (with
    ``password``, to log in as it) and its ``ROLE_appender``, made by the superuser, the
    appender granted to the suite's user (who hands it the append functions)."""
    suite_user = Settings(store="postgres").postgres_user
    with psycopg.connect(postgres_admin_conninfo(), autocommit=True) as admin:
        for name, login in ((role, "LOGIN"), (f"{role}_appender", "NOLOGIN")):
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                admin.execute(f'CREATE ROLE "{name}" {login}')
        if password is not None:
            admin.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        admin.execute(f'GRANT "{role}_appender" TO "{suite_user}"')


@pytest.fixture
def postgres_settings() -> Iterator[Settings]:
    """Settings for a brand-new PostgreSQL database, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    create_database(name)
    yield Settings(store="postgres", postgres_dbname=name)
    drop_database(name)


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
