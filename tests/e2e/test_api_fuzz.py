"""Whatever a client sends — generated from the OpenAPI document by schemathesis, valid
and invalid — the API answers with a clear client error or success, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

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


def test_no_request_gives_a_server_error(fuzzed_api: tuple[Any, str]) -> None:
    app, token = fuzzed_api
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 40

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def no_server_error(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} answered {response.status_code}: "
                f"{response.text[:500]}"
            )

        no_server_error()
