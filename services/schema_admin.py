"""Schema set-up for ``salesledger init-db``: tables, append-only triggers, application role.

On PostgreSQL the owner (the role running ``init-db``: a superuser, or the database's
owner with CREATEROLE) creates the recorder's tables, then a trigger on each ledger table
(events, claims, seals) that refuses UPDATE, DELETE and TRUNCATE even for the owner, and
an application role that may read those tables, append to the events, claims and seals
only through the append functions, and never update or delete them. The application then
connects as that role (``POSTGRES_USER=ledger_app``); it cannot drop or disable the
triggers, as it owns no ledger table. On SQLite, where there are no roles, the same
triggers are created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from services.bootstrap import build_ledger
from services.settings import Settings
from services.transparency.store import TREE_TABLES

SIDE_TABLES = ("ledger_claims", "ledger_seals", *TREE_TABLES)
"""Besides the events table, the tables that only ever grow."""

REFUSE_CHANGE_FUNCTION = "ledger_refuse_change"

WRITTEN_BY_FUNCTIONS = ("ledger_claims", "ledger_seals")
"""Besides the events table, the tables the application role writes only through the
append functions (the tree tables it still inserts into)."""


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
    recorder: Any = ledger.recorder
    tables = (recorder.events_table_name, *SIDE_TABLES)
    append_functions = tuple(
        getattr(recorder, name)
        for name in ("ledger_insert_function", "ledger_insert_one_function", "ledger_seal_function")
        if hasattr(recorder, name)
    )
    ledger.close()
    if settings.store == "sqlite":
        _sqlite_triggers(settings, tables)
        return InitResult("sqlite", tables, None)
    with psycopg.connect(settings.postgres_conninfo()) as conn, conn.transaction():
        _postgres_triggers(conn, tables)
        _postgres_app_role(conn, settings.postgres_dbname, app_role, app_password, tables)
        written = (recorder.events_table_name, *WRITTEN_BY_FUNCTIONS)
        _appends_only_through_the_functions(conn, app_role, written, append_functions)
        _bound_idle_transactions(conn, settings)
    return InitResult("postgres", tables, app_role)


def _appends_only_through_the_functions(
    conn: psycopg.Connection[tuple[object, ...]],
    app_role: str,
    written_by_appends: tuple[str, ...],
    functions: tuple[str, ...],
) -> None:
    """The application role may not INSERT into the events table, the claims or the
    seals: it can only call the append functions, which run as ``{app_role}_appender``
    (a role without login, owner of the functions: SECURITY DEFINER), compute each
    event's chain hash themselves and record only a seal the events yield. So the role
    cannot forge an event with a chosen hash, a claim (an API token digest, a uniqueness
    key) that no event records, nor a seal of its choosing."""
    appender = sql.Identifier(f"{app_role}_appender")
    role = sql.Identifier(app_role)
    exists = conn.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = %s", (f"{app_role}_appender",)
    ).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE ROLE {appender} NOLOGIN").format(appender=appender))
    _become_member_of(conn, f"{app_role}_appender")
    conn.execute(
        sql.SQL("GRANT USAGE ON SCHEMA public TO {appender}").format(appender=appender)
    )
    conn.execute(
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {appender}").format(
            appender=appender
        )
    )
    for table in written_by_appends:
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT ON {table} TO {appender}").format(
                table=sql.Identifier(table), appender=appender
            )
        )
        conn.execute(
            sql.SQL("REVOKE INSERT ON {table} FROM {role}, PUBLIC").format(
                table=sql.Identifier(table), role=role
            )
        )
    _give_functions(conn, functions, appender, role)


def _give_functions(
    conn: psycopg.Connection[tuple[object, ...]],
    functions: tuple[str, ...],
    appender: sql.Identifier,
    role: sql.Identifier,
) -> None:
    """``functions`` become the appender's, run as it, and only ``role`` may call them.
    The new owner needs CREATE on their schema, but only while it takes them."""
    signatures = conn.execute(
        "SELECT oid::regprocedure::text FROM pg_proc WHERE proname = ANY(%s)", (list(functions),)
    ).fetchall()
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {appender}").format(appender=appender))
    for (signature,) in signatures:
        function = sql.SQL(str(signature))
        conn.execute(
            sql.SQL(
                "ALTER FUNCTION {function} OWNER TO {appender}; "
                "ALTER FUNCTION {function} SECURITY DEFINER SET search_path = public, pg_temp; "
                "REVOKE ALL ON FUNCTION {function} FROM PUBLIC; "
                "GRANT EXECUTE ON FUNCTION {function} TO {role}"
            ).format(function=function, appender=appender, role=role)
        )
    conn.execute(
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {appender}").format(appender=appender)
    )


def _become_member_of(conn: psycopg.Connection[tuple[object, ...]], role: str) -> None:
    """Only a member of a role may give it objects (PostgreSQL 15 and later, unless a
    superuser): an administrator with CREATEROLE but no superuser, as on a managed
    server, is granted the role it hands the append functions to."""
    member = conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)).fetchone()
    if not (member and member[0]):
        conn.execute(
            sql.SQL("GRANT {role} TO CURRENT_USER").format(role=sql.Identifier(role))
        )


def _bound_idle_transactions(
    conn: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    """End sessions of this database left idle in a transaction for longer than
    ``idle_transaction_timeout_seconds``: such a transaction holds the read horizon
    (``ledger_read_horizon``) of every follower until it ends. New sessions only."""
    conn.execute(
        sql.SQL("ALTER DATABASE {db} SET idle_in_transaction_session_timeout = {ms}").format(
            db=sql.Identifier(settings.postgres_dbname),
            ms=sql.Literal(f"{int(settings.idle_transaction_timeout_seconds * 1000)}ms"),
        )
    )


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
