"""The API's routes: FastAPI tries its routers in turn, and ``create_app`` lists them in
order of traffic. That order is only about speed if no two routes answer the same
request; and a blocking endpoint costs one thread hand-over (``services.api.routes``)."""

from __future__ import annotations

import re
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from services.api.app import create_app
from services.api.dependencies import READ_YOUR_WRITES_TIMEOUT_SECONDS
from services.api.routes import LedgerRouter
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.conftest import build_team

PARAMETER = re.compile(r"\{[^}/]+\}")


SAME_ROUTER = {
    ("GET", "/schemas/asyncapi"): "/schemas/{ce_type}",
    ("GET", "/integrity/heads/latest"): "/integrity/heads/{tree_size}",
}
"""Overlaps within one router, where the literal path is declared first."""


def _pattern(template: str) -> re.Pattern[str]:
    escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    return re.compile("^" + PARAMETER.sub("[^/]+", escaped) + "$")


def test_no_two_routes_answer_the_same_request(tmp_path: Path) -> None:
    app = create_app(Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db")))
    paths = app.openapi()["paths"]
    routes = [(method.upper(), template) for template, item in paths.items() for method in item]
    assert len(routes) > 80
    for method, template in routes:
        concrete = PARAMETER.sub("x1", template)
        answering = [
            other
            for other_method, other in routes
            if other_method == method and _pattern(other).match(concrete)
        ]
        allowed = [template, *filter(None, [SAME_ROUTER.get((method, template))])]
        assert answering == allowed, f"{method} {concrete} is answered by {answering}"
    with TestClient(app) as client:
        assert "asyncapi" in client.get("/schemas/asyncapi").json()


class Answer(BaseModel):
    thread: str
    count: int


def test_a_blocking_endpoint_runs_in_a_worker_thread_and_its_answer_is_checked() -> None:
    router = LedgerRouter()
    loop_threads: list[str] = []

    @router.get("/where", response_model=Answer)
    def where(count: int = 1) -> dict[str, object]:
        return {"thread": threading.current_thread().name, "count": count}

    @router.get("/wrong", response_model=Answer)
    def wrong() -> dict[str, object]:
        return {"thread": "x", "count": "not a number"}

    @router.get("/named/{pool}")
    def named(pool: str, function: str, kind: str = "k") -> dict[str, str]:
        """Parameters named as the hand-over's own arguments reach the endpoint."""
        return {"pool": pool, "function": function, "kind": kind}

    app = FastAPI()
    app.include_router(router)

    @app.middleware("http")
    async def note_loop_thread(request, call_next):  # type: ignore[no-untyped-def]
        loop_threads.append(threading.current_thread().name)
        return await call_next(request)

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/where", params={"count": "3"})
        assert answer.status_code == 200
        assert answer.json()["count"] == 3
        assert answer.json()["thread"] not in loop_threads
        assert client.get("/where", params={"count": "x"}).status_code == 422
        assert client.get("/wrong").status_code == 500
        named_answer = client.get("/named/p", params={"function": "f", "kind": "x"})
        assert named_answer.json() == {"pool": "p", "function": "f", "kind": "x"}


def test_a_record_is_read_once_per_request_and_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access check reads the deal; the route answers from that read, not another;
    a change made meanwhile through another process shows in the next request."""
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    build_team(ledger)
    _, token = ledger.issue_token("rep1", actor="admin")
    customer = ledger.register_customer(name="Acme", source="web", owner_id="rep1", actor="rep1")
    deal = ledger.open_opportunity(
        customer_id=customer.aggregate_id, owner_id="rep1", title="Line 3", source="web",
        amount=Decimal("2500"), expected_close=date(2026, 6, 30), product="arm",
        region="east", actor="rep1",
    ).aggregate_id
    reads: list[str] = []
    read = ledger.read

    def counted(kind: type[Any], aggregate_id: Any) -> Any:
        reads.append(str(aggregate_id))
        return read(kind, aggregate_id)

    monkeypatch.setattr(ledger, "read", counted)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, ledger)) as client:
        first = client.get(f"/opportunities/{deal}", headers=headers)
        assert first.status_code == 200 and first.json()["state"]["amount"] == "2500"
        assert reads == [deal]
        other = build_ledger(settings)  # another process's ledger
        other.revise_amount(deal, Decimal("3000"), "scope grew", actor="rep1")
        other.close()
        second = client.get(f"/opportunities/{deal}", headers=headers)
        assert second.json()["state"]["amount"] == "3000"
        assert second.headers["ETag"] != first.headers["ETag"]
        assert reads == [deal, deal]
    ledger.close()


def test_a_read_your_writes_wait_holds_up_no_other_request(tmp_path: Path) -> None:
    """With one thread for blocking work, a request waiting (up to 5 s) for a projection
    to reach its ``min_position`` still leaves that thread to the others."""
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"), api_threads=1)
    ledger = build_ledger(settings)
    build_team(ledger)
    _, token = ledger.issue_token("rep1", actor="admin")
    head = ledger.register_customer(
        name="Acme", source="web", owner_id="rep1", actor="rep1"
    ).position
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, ledger, project_in_process=False)  # nothing projects
    with TestClient(app) as client:
        waited: list[int] = []
        began = time.monotonic()
        waiting = threading.Thread(
            target=lambda: waited.append(
                client.get("/funnel", params={"min_position": head}, headers=headers).status_code
            )
        )
        waiting.start()
        threading.Event().wait(0.5)  # the wait has begun
        answered = client.get("/people", headers=headers)
        assert answered.status_code == 200
        # Answered while the wait went on, not once it gave up (5 s after it began).
        assert time.monotonic() - began < READ_YOUR_WRITES_TIMEOUT_SECONDS / 2
        waiting.join()
        assert waited == [504]
    ledger.close()
