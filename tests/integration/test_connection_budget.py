"""The connection budget: an API process with the smallest pools, under concurrent
requests while the database holds them up, answers only 2xx or 503 (with Retry-After),
never opens more connections than its settings allow, and stays alive."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from aggregates.organisation import Role
from commands.ledger import SalesLedger
from services.settings import Settings
from tests.integration.processes import (
    ApiProcess,
    call,
    call_with_headers,
    database_connections,
)

pytestmark = pytest.mark.integration

TINY_POOLS = {
    "LEDGER_POSTGRES_POOL_MIN": "1",
    "LEDGER_POSTGRES_POOL_MAX": "1",
    "LEDGER_POSTGRES_APPEND_CONNECTIONS": "1",
    "LEDGER_READ_POOL_MAX": "1",
    "LEDGER_POSTGRES_POOL_TIMEOUT": "1",
}
CONCURRENT = 24


@pytest.fixture
def api(postgres_settings: Settings) -> Iterator[tuple[ApiProcess, str]]:
    ledger = SalesLedger(env=postgres_settings.event_store_env())
    ledger.set_up_organisation("Co", "admin", "Admin")
    ledger.add_person("rep", "Ray", Role.SALES_REP, None, actor="admin")
    _, token = ledger.issue_token("rep", actor="admin")
    ledger.close()
    with ApiProcess(postgres_settings, TINY_POOLS, "--workers", "1") as process:
        yield process, token


def _hold_the_events_table(settings: Settings, seconds: float, held: threading.Event) -> None:
    """Lock the events table (reads and appends wait) for ``seconds``, from outside."""
    with psycopg.connect(settings.postgres_conninfo()) as conn:
        conn.execute("LOCK TABLE salesledger_events IN ACCESS EXCLUSIVE MODE")
        held.set()
        time.sleep(seconds)


def test_a_process_out_of_connections_answers_503_and_stays_up(
    postgres_settings: Settings, api: tuple[ApiProcess, str]
) -> None:
    process, token = api
    status, body = call("POST", f"{process.base}/customers", token, {"name": "A", "source": "web"})
    assert status == 201, body
    customer = body["aggregate_id"]
    requests = [
        ("POST", "/customers", {"name": "Shop", "source": "web"}),
        ("GET", f"/customers/{customer}", None),
        ("GET", "/people", None),
    ]
    held = threading.Event()
    holder = threading.Thread(
        target=_hold_the_events_table, args=(postgres_settings, 3.0, held), daemon=True
    )
    holder.start()
    assert held.wait(10)
    most_connections = 0

    def one(n: int) -> tuple[int, dict[str, str]]:
        method, path, payload = requests[n % len(requests)]
        status, _, headers = call_with_headers(method, f"{process.base}{path}", token, payload)
        return status, headers

    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = pool.map(one, range(CONCURRENT * 2))
        while holder.is_alive():
            most_connections = max(most_connections, database_connections(postgres_settings))
            time.sleep(0.1)
        results = list(answers)
    holder.join()

    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 201, 503}, statuses
    assert 503 in statuses
    assert all(headers.get("retry-after") for status, headers in results if status == 503)
    # One event-store pool connection, one append connection, one notifier, one read
    # pool connection; and the test's own lock holder.
    assert most_connections <= 4 + 1
    assert process.alive()
    status, _ = call("POST", f"{process.base}/customers", token, {"name": "B", "source": "web"})
    assert status == 201
