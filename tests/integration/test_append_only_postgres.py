"""Append-only below the application: after ``init-db`` no one may UPDATE, DELETE or
TRUNCATE the ledger tables, not the owner (trigger) and not the application role
(privileges), while the application role still records and reads events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from commands.ledger import SalesLedger
from services.schema_admin import init_db
from services.settings import Settings
from tests.conftest import build_team, postgres_admin_conninfo

pytestmark = pytest.mark.integration

APP_PASSWORD = "app-secret"


@pytest.fixture
def app_role() -> Iterator[str]:
    role = f"ledger_app_{uuid.uuid4().hex[:8]}"
    yield role
    with psycopg.connect(postgres_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}_appender"')


@pytest.fixture
def initialised(postgres_settings: Settings, app_role: str) -> Iterator[tuple[Settings, str]]:
    result = init_db(postgres_settings, app_role=app_role, app_password=APP_PASSWORD)
    assert result.app_role == app_role
    owner_ledger = SalesLedger(env=postgres_settings.event_store_env())
    build_team(owner_ledger)
    owner_ledger.register_customer(name="Globex", source="web", tax_id="TX-9", actor="rep1")
    table: str = owner_ledger.recorder.events_table_name  # type: ignore[attr-defined]
    owner_ledger.close()
    yield postgres_settings, table
    with psycopg.connect(
        postgres_admin_conninfo(postgres_settings.postgres_dbname), autocommit=True
    ) as conn:
        conn.execute(f'DROP OWNED BY "{app_role}", "{app_role}_appender"')


def _connect(settings: Settings, user: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    conninfo = postgres_admin_conninfo(settings.postgres_dbname)
    if user is not None:
        conninfo += f" user={user} password={APP_PASSWORD}"
    return psycopg.connect(conninfo, autocommit=True)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET topic = 'x'",
        "DELETE FROM {table}",
        "TRUNCATE {table}",
        "UPDATE ledger_claims SET value = 'x'",
        "DELETE FROM ledger_claims",
        "TRUNCATE ledger_seals",
    ],
)
def test_the_owner_cannot_change_the_ledger(
    initialised: tuple[Settings, str], statement: str
) -> None:
    settings, table = initialised
    with (
        _connect(settings) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement.format(table=table))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET topic = 'x'",
        "DELETE FROM {table}",
        "TRUNCATE {table}",
        "DELETE FROM ledger_claims",
        "ALTER TABLE {table} DISABLE TRIGGER ledger_append_only",
        "DROP TRIGGER ledger_append_only ON {table}",
    ],
)
def test_the_application_role_cannot_change_the_ledger(
    initialised: tuple[Settings, str], app_role: str, statement: str
) -> None:
    settings, table = initialised
    with _connect(settings, app_role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.format(table=table))


def test_the_application_role_records_and_reads_events(
    initialised: tuple[Settings, str], app_role: str
) -> None:
    settings, _ = initialised
    app_settings = settings.model_copy(
        update={"postgres_user": app_role, "postgres_password": APP_PASSWORD}
    )
    ledger = SalesLedger(env=app_settings.event_store_env())
    try:
        customer = ledger.register_customer(name="Acme", source="web", actor="rep1")
        ledger.log_customer_activity(customer.aggregate_id, "call", "hello", actor="rep1")
        assert ledger.authenticate(ledger.issue_token("rep1", actor="admin")[1]) == "rep1"
        assert customer.position is not None
    finally:
        ledger.close()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO ledger_claims VALUES ('token:' || repeat('0', 64), 'admin')",
        "INSERT INTO {table} (originator_id, originator_version, topic, state) "
        "VALUES (gen_random_uuid(), 1, 'x', '\\x7b7d')",
    ],
)
def test_the_application_role_cannot_forge_claims_or_events(
    initialised: tuple[Settings, str], app_role: str, statement: str
) -> None:
    """It appends only through the functions (SECURITY DEFINER, owned by a role without
    login), which compute the chain hash themselves."""
    settings, table = initialised
    with _connect(settings, app_role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.format(table=table))
    with _connect(settings) as admin:
        owner = admin.execute(
            "SELECT r.rolname, r.rolcanlogin, p.prosecdef FROM pg_proc p "
            "JOIN pg_roles r ON r.oid = p.proowner WHERE p.proname LIKE 'ledger_append_%'"
        ).fetchall()
    assert owner and all(row == (f"{app_role}_appender", False, True) for row in owner)
