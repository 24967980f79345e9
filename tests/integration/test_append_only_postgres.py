"""Append-only below the application: after ``init-db`` no one may UPDATE, DELETE or
TRUNCATE the ledger tables, not the owner (trigger) and not the application role
(privileges), while the application role still records and reads events. ``init-db``
runs as an administrator that is no superuser; the suite itself connects as none."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from commands.ledger import SalesLedger
from services.chain import GENESIS, Seal
from services.integrity import ChainVerifier, Sealer
from services.schema_admin import init_db
from services.settings import Settings
from tests.conftest import (
    build_team,
    create_database,
    drop_database,
    postgres_admin_conninfo,
    wait_for_read_horizon,
)

pytestmark = pytest.mark.integration

APP_PASSWORD = "app-secret"


@pytest.fixture
def app_role() -> Iterator[str]:
    role = f"ledger_app_{uuid.uuid4().hex[:8]}"
    yield role
    with psycopg.connect(postgres_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}", "{role}_appender"')


@pytest.fixture
def administrator() -> Iterator[Settings]:
    """``init-db``'s user: a role that may create roles and owns a new database, but is
    no superuser, as the administrator of a managed server is not."""
    role = f"ledger_admin_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE \"{role}\" LOGIN CREATEROLE PASSWORD '{APP_PASSWORD}'")
    database = f"t_{uuid.uuid4().hex[:12]}"
    create_database(database, owner=role)
    as_role = {"postgres_user": role, "postgres_password": APP_PASSWORD}
    yield Settings(store="postgres").model_copy(update={"postgres_dbname": database, **as_role})
    drop_database(database)  # and every privilege granted in it
    with psycopg.connect(postgres_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def initialised(app_role: str, administrator: Settings) -> tuple[Settings, str]:
    """The app role first: it is dropped after the database that holds its privileges."""
    result = init_db(administrator, app_role=app_role, app_password=APP_PASSWORD)
    assert result.app_role == app_role
    owner_ledger = SalesLedger(env=administrator.event_store_env())
    build_team(owner_ledger)
    owner_ledger.register_customer(name="Globex", source="web", tax_id="TX-9", actor="rep1")
    table: str = owner_ledger.recorder.events_table_name  # type: ignore[attr-defined]
    owner_ledger.close()
    return administrator, table


def _connect(settings: Settings, user: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    """As ``user`` (password APP_PASSWORD), or as the owner of the ledger's tables."""
    conninfo = settings.postgres_conninfo()
    if user is not None:
        conninfo += f" user={user} password={APP_PASSWORD}"
    return psycopg.connect(conninfo, autocommit=True)


def _attributes(conninfo: str) -> tuple[object, ...] | None:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT rolsuper, rolcreaterole, rolbypassrls, rolreplication FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()


def test_the_suite_connects_as_no_superuser() -> None:
    """The tests run as the application does: as a role that is no superuser, which
    could not bypass the triggers, the privileges or the roles of the other tests."""
    suite = Settings(store="postgres").postgres_conninfo()
    assert _attributes(suite) == (False, False, False, False)


def test_the_application_role_is_no_superuser(
    initialised: tuple[Settings, str], app_role: str
) -> None:
    settings, _ = initialised
    conninfo = f"{settings.postgres_conninfo()} user={app_role} password={APP_PASSWORD}"
    assert _attributes(conninfo) == (False, False, False, False)


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
        "SET session_replication_role = replica",
    ],
)
def test_the_application_role_cannot_change_the_ledger(
    initialised: tuple[Settings, str], app_role: str, statement: str
) -> None:
    settings, table = initialised
    with _connect(settings, app_role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.format(table=table))


def _as_app(settings: Settings, app_role: str) -> SalesLedger:
    as_role = {"postgres_user": app_role, "postgres_password": APP_PASSWORD}
    return SalesLedger(env=settings.model_copy(update=as_role).event_store_env())


def test_the_application_role_records_and_reads_events(
    initialised: tuple[Settings, str], app_role: str
) -> None:
    settings, _ = initialised
    ledger = _as_app(settings, app_role)
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
        "INSERT INTO ledger_seals (after_position, upto_position, positions, event_hashes, "
        "ledger_hash) VALUES (0, 1, '\\x', '\\x', '\\x')",
    ],
)
def test_the_application_role_cannot_forge_claims_events_or_seals(
    initialised: tuple[Settings, str], app_role: str, statement: str
) -> None:
    """It appends only through the functions (SECURITY DEFINER, owned by a role without
    login), which compute the chain hash themselves and check a seal against the events."""
    settings, table = initialised
    with _connect(settings, app_role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.format(table=table))
    with _connect(settings) as admin:
        owner = admin.execute(
            "SELECT r.rolname, r.rolcanlogin, p.prosecdef FROM pg_proc p "
            "JOIN pg_roles r ON r.oid = p.proowner WHERE p.proname LIKE 'ledger_append_%'"
        ).fetchall()
    assert owner and all(row == (f"{app_role}_appender", False, True) for row in owner)


def test_the_application_role_records_only_the_seals_the_events_yield(
    initialised: tuple[Settings, str], app_role: str
) -> None:
    settings, _ = initialised
    ledger = _as_app(settings, app_role)
    recorder: Any = ledger.recorder
    try:
        wait_for_read_horizon(ledger)
        head = recorder.horizon_position()
        records = recorder.select_chained(0, head, head)
        honest = [r.hash or GENESIS for r in records]
        forged = Seal(0, head, [r.position for r in records], honest, ledger_hash=GENESIS)
        with pytest.raises(Exception, match="does not match the stored events"):
            recorder.insert_seal(forged)
        detached = Seal(1, head, forged.positions[1:], honest[1:], ledger_hash=GENESIS)
        with pytest.raises(Exception, match="extends the last one"):
            recorder.insert_seal(detached)
        assert Sealer(recorder).seal() == head
        assert ChainVerifier(recorder).verify_range().ok
    finally:
        ledger.close()
