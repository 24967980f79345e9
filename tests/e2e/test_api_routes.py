"""The API's routes: FastAPI tries its routers in turn, and ``create_app`` lists them in
order of traffic. That order is only about speed if no two routes answer the same
request; and a blocking endpoint costs one thread hand-over (``services.api.routes``)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from services.api.app import create_app
from services.api.routes import LedgerRouter
from services.settings import Settings

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
