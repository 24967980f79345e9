"""Schema set-up for ``salesledger init-db``: tables, append-only triggers, application role.

On PostgreSQL the owner (the role running ``init-db``) creates the recorder's tables,
then a trigger on each ledger table (events, claims, seals) that refuses UPDATE, DELETE
and TRUNCATE even for the owner, and an application role that may insert and select
those tables but not update or delete them. The application then connects as that role
(``POSTGRES_USER=ledger_app``); it cannot drop or disable the triggers, as it owns no
ledger table. On SQLite, where there are no roles, the same triggers are created.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from services.bootstrap import build_ledger
from services.settings import Settings
from services.transparency.store import TREE_TABLES

SIDE_TABLES = ("ledger_claims", "ledger_seals", *TREE_TABLES)
"""Besides the events table, the tables that only ever grow."""

REFUSE_CHANGE_FUNCTION = "ledger_refuse_change"


@dataclass(frozen=True)
class InitResult:
    """What ``init_db`` set up."""

    store: str
    tables: tuple[str, ...]
    app_role: str | None


def init_db(
    settings: Settings, *, app_role: str = "ledger_app", app_password: str | None = None
) -> InitResult:
    """Create the ledger tables, the append-only triggers and (PostgreSQL) the app role."""
    ledger = build_ledger(settings)
    tables = (ledger.recorder.events_table_name, *SIDE_TABLES)  # type: ignore[attr-defined]
    ledger.close()
    if settings.store == "sqlite":
        _sqlite_triggers(settings, tables)
        return InitResult("sqlite", tables, None)
    with psycopg.connect(settings.postgres_conninfo()) as conn, conn.transaction():
        _postgres_triggers(conn, tables)
        _postgres_app_role(conn, settings.postgres_dbname, app_role, app_password, tables)
    return InitResult("postgres", tables, app_role)


def _postgres_triggers(
    conn: psycopg.Connection[tuple[object, ...]], tables: tuple[str, ...]
) -> None:
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $BODY$ "
            "BEGIN RAISE EXCEPTION 'the % table is append-only: % refused', TG_TABLE_NAME, TG_OP "
            "USING ERRCODE = 'insufficient_privilege'; END; $BODY$"
        ).format(function=sql.Identifier(REFUSE_CHANGE_FUNCTION))
    )
    for table in tables:
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION {function}()"
            ).format(table=sql.Identifier(table), function=sql.Identifier(REFUSE_CHANGE_FUNCTION))
        )
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            ).format(table=sql.Identifier(table), function=sql.Identifier(REFUSE_CHANGE_FUNCTION))
        )


def _postgres_app_role(
    conn: psycopg.Connection[tuple[object, ...]],
    dbname: str,
    role: str,
    password: str | None,
    tables: tuple[str, ...],
) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE ROLE {role} LOGIN").format(role=sql.Identifier(role)))
    if password:
        conn.execute(
            sql.SQL("ALTER ROLE {role} PASSWORD {password}").format(
                role=sql.Identifier(role), password=sql.Literal(password)
            )
        )
    statements = [
        "GRANT CONNECT ON DATABASE {db} TO {role}",
        "GRANT USAGE, CREATE ON SCHEMA public TO {role}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    ]
    for statement in statements:
        conn.execute(
            sql.SQL(statement).format(db=sql.Identifier(dbname), role=sql.Identifier(role))
        )
    for table in tables:
        conn.execute(
            sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}, PUBLIC").format(
                table=sql.Identifier(table), role=sql.Identifier(role)
            )
        )
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT ON {table} TO {role}").format(
                table=sql.Identifier(table), role=sql.Identifier(role)
            )
        )


def _sqlite_triggers(settings: Settings, tables: tuple[str, ...]) -> None:
    import sqlite3

    with sqlite3.connect(settings.sqlite_path) as conn:
        for table in tables:
            for operation in ("UPDATE", "DELETE"):
                conn.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} "
                    f"BEFORE {operation} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, 'the {table} table is append-only: "
                    f"{operation} refused'); "
                    "END"
                )
