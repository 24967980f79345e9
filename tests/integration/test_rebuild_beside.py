"""A rebuild under read load: the new tables fill beside the live ones, and every query
meanwhile gets the whole answer (0 failed, 0 partial), from the old tables and then
from the new ones; afterwards the live worker carries on from the switched positions."""

from __future__ import annotations

import threading
import time

import pytest

from commands.ledger import SalesLedger
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.read_store import open_read_store
from services.rebuild import rebuild_beside
from services.settings import Settings
from tests.integration.test_projections_postgres import dump, open_deal, set_up

pytestmark = pytest.mark.integration

DEALS = 60
READERS = 3


def test_queries_answer_in_full_while_a_rebuild_runs_beside(
    postgres_settings: Settings,
) -> None:
    ledger = SalesLedger(env=postgres_settings.event_store_env())
    set_up(ledger)
    for n in range(DEALS):
        open_deal(ledger, f"rep{n % 2}", n)
    live = open_read_store(postgres_settings)
    runner = ProjectionRunner(ledger, live, all_projections())
    runner.catch_up()
    expected = dump(live)
    assert expected["funnel_opportunities"] and expected["audit_trail"]

    answers: list[bool] = []
    failures: list[BaseException] = []
    rebuilding = threading.Event()
    rebuilding.set()

    def read() -> None:
        reader = open_read_store(postgres_settings)
        try:
            while rebuilding.is_set():
                try:
                    answers.append(dump(reader) == expected)
                except Exception as error:  # noqa: BLE001 - counted: the test wants none
                    failures.append(error)
        finally:
            reader.close()

    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    time.sleep(0.2)
    during = len(answers)
    replayed = rebuild_beside(ledger, live, all_projections())
    time.sleep(0.2)
    rebuilding.clear()
    for reader in readers:
        reader.join()

    assert replayed >= DEALS
    assert failures == []
    assert len(answers) > during and all(answers), f"{answers.count(False)} partial answers"
    assert dump(live) == expected
    open_deal(ledger, "rep0", DEALS)  # the live worker goes on from the switched positions
    runner.catch_up()
    head = ledger.recorder.max_notification_id()
    assert set(runner.positions().values()) == {head}
    with live.transaction() as tx:
        assert tx.execute("SELECT to_regnamespace('projection_rebuild') AS s")[0]["s"] is None
    live.close()
    ledger.close()
