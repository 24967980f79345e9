"""The read horizon waits only for transactions of the ledger's own database: one left
open in another database of the cluster no longer holds followers back."""

from __future__ import annotations

import time

import psycopg
import pytest

from commands.ledger import SalesLedger
from services.bootstrap import build_ledger
from services.schema_admin import init_db
from services.settings import Settings
from tests.conftest import postgres_admin_conninfo, provide_app_role, wait_for_read_horizon

pytestmark = pytest.mark.integration

HORIZON_BOUND_SECONDS = 2.0
"""How long a follower may take to see a committed event (it polls every 0.25 s)."""


@pytest.fixture
def postgres_ledger(postgres_settings: Settings) -> SalesLedger:
    ledger = build_ledger(postgres_settings)
    ledger.set_up_organisation("Co", "admin", "Admin")
    return ledger


def _open_writing_transaction(dbname: str | None) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(postgres_admin_conninfo(dbname))
    conn.execute("SELECT pg_current_xact_id()")  # holds a transaction id, left open
    return conn


def test_an_open_transaction_in_another_database_does_not_delay_followers(
    postgres_ledger: SalesLedger,
) -> None:
    other = _open_writing_transaction(None)  # the suite's own database, not the ledger's
    try:
        started = time.monotonic()
        postgres_ledger.add_person("rep", "Rep", "sales_rep", "admin", actor="admin")
        wait_for_read_horizon(postgres_ledger, timeout=HORIZON_BOUND_SECONDS)
        assert time.monotonic() - started < HORIZON_BOUND_SECONDS
    finally:
        other.close()
    postgres_ledger.close()


def test_an_open_transaction_in_the_ledgers_database_still_holds_it_until_it_ends(
    postgres_ledger: SalesLedger, postgres_settings: Settings
) -> None:
    same = _open_writing_transaction(postgres_settings.postgres_dbname)
    try:
        postgres_ledger.add_person("rep", "Rep", "sales_rep", "admin", actor="admin")
        time.sleep(0.5)
        store = postgres_ledger.store
        assert (postgres_ledger.recorder.max_notification_id() or 0) < (
            store.max_committed_notification_id()
        )
    finally:
        same.close()
    wait_for_read_horizon(postgres_ledger, timeout=HORIZON_BOUND_SECONDS)
    postgres_ledger.close()


def test_a_transaction_left_idle_in_the_ledgers_database_holds_it_only_for_the_bound(
    postgres_settings: Settings,
) -> None:
    bounded = postgres_settings.model_copy(update={"idle_transaction_timeout_seconds": 1.0})
    provide_app_role("ledger_app_horizon_tests")
    init_db(bounded, app_role="ledger_app_horizon_tests")
    ledger = build_ledger(bounded)
    ledger.set_up_organisation("Co", "admin", "Admin")
    idle = _open_writing_transaction(bounded.postgres_dbname)  # a session started after
    try:
        started = time.monotonic()
        ledger.add_person("rep", "Rep", "sales_rep", "admin", actor="admin")
        wait_for_read_horizon(ledger, timeout=1.0 + HORIZON_BOUND_SECONDS)
        assert time.monotonic() - started >= 0.5  # it did hold the horizon, for a while
    finally:
        idle.close()
        ledger.close()
