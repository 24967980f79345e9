"""Whatever a client sends — generated from the OpenAPI document by schemathesis, valid
and invalid — the API answers with a clear client error or success, never a 500, and
every answer is one the OpenAPI document describes: its status, its content type and
its schema (checks ``not_a_server_error``, ``status_code_conformance``,
``content_type_conformance``, ``response_schema_conformance``)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "ledger.db"
    ledger_settings = Settings(store="sqlite", sqlite_path=str(path))
    ledger = build_ledger(ledger_settings)
    build_team(ledger)
    customer = ledger.register_customer(name="Fuzz Co", source="web", owner_id="rep1", actor="rep1")
    ledger.open_opportunity(
        customer_id=customer.aggregate_id,
        owner_id="rep1",
        title="t",
        source="web",
        amount=Decimal(100),
        expected_close=date(2026, 6, 1),
        product="p",
        region="r",
        actor="rep1",
    )
    _, token = ledger.issue_token("admin", actor="system")
    app = create_app(ledger_settings, ledger, project_in_process=True)
    worker = app.state.context.worker
    worker.start()
    yield app, token
    worker.stop()
    ledger.close()


EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "12"))
"""Generated requests per operation: 12 in the suite (about 1,000 requests); the
≥ 10,000-request run of the reliability issue is ``LEDGER_FUZZ_EXAMPLES=130``."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_every_answer_is_one_the_openapi_document_describes(fuzzed_api: tuple[Any, str]) -> None:
    app, token = fuzzed_api
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 40
    failures: list[str] = []
    sent = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def conforms(case: Any) -> None:
            nonlocal sent
            sent += 1
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        try:
            conforms()
        except Exception as error:  # noqa: BLE001 - collected, reported together below
            failures.append(f"{operation.method.upper()} {operation.path}: {error}"[:1500])
    assert not failures, "\n\n".join(failures)
    ledger = app.state.context.ledger
    head = ledger.recorder.max_notification_id() or 0
    worker = app.state.context.worker
    deadline = time.monotonic() + 60
    while min(worker.runner.positions().values()) < head and time.monotonic() < deadline:
        time.sleep(0.1)
    positions = worker.runner.positions()
    print(f"{sent} requests over {len(operations)} operations; store head {head}; "
          f"projections at {sorted(set(positions.values()))}")
    assert set(positions.values()) == {head}, "every projection reaches the store's head"
