"""Request ids and W3C trace context: accepted from the caller, answered, and on every
JSON log line of the request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api.observability import RequestContextMiddleware, trace_context
from services.logs import configure_logging

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(stream=stream)
    yield stream
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def app() -> FastAPI:
    application = FastAPI()
    application.add_middleware(RequestContextMiddleware)

    @application.get("/deals/{deal_id}")
    def deal(deal_id: str) -> dict[str, str]:
        structlog.get_logger("test").info("looked up", deal=deal_id)
        logging.getLogger("stdlib").warning("a standard logger too")
        return {"deal": deal_id}

    return application


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    """The server's log lines (not the test client's own)."""
    parsed = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [entry for entry in parsed if entry["logger"] != "httpx"]


def test_the_callers_trace_and_request_id_are_kept_and_logged(
    json_logs: io.StringIO,
) -> None:
    response = TestClient(app()).get(
        "/deals/d1", headers={"traceparent": f"00-{TRACE}-{PARENT}-01", "X-Request-ID": "r-42"}
    )
    assert response.headers["x-request-id"] == "r-42"
    version, trace, span, flags = response.headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01") and span != PARENT
    logged = lines(json_logs)
    assert [entry["event"] for entry in logged] == ["looked up", "a standard logger too",
                                                    "request"]
    for entry in logged:
        assert (entry["request_id"], entry["trace_id"], entry["span_id"]) == ("r-42", TRACE, span)
        assert entry["parent_span_id"] == PARENT
    assert logged[-1]["route"] == "/deals/{deal_id}" and logged[-1]["status"] == 200


def test_without_or_with_a_bad_traceparent_a_new_trace_starts(
    json_logs: io.StringIO,
) -> None:
    response = TestClient(app()).get(
        "/deals/d2", headers={"traceparent": "00-" + "0" * 32 + f"-{PARENT}-01",
                              "X-Request-ID": "bad id with spaces"}
    )
    assert len(response.headers["x-request-id"]) == 32
    assert TRACE not in response.headers["traceparent"]
    assert trace_context(None)[1] is None
    assert trace_context(f"00-{TRACE}-{PARENT}-00") == (TRACE, PARENT, "00")
    assert all(entry["parent_span_id"] is None for entry in lines(json_logs))
