"""ASGI middlewares: request ids, trace context and access logs; timings and command
counts for ``/metrics``."""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from events.base import caused_by
from services.database import Database
from services.logs import REQUEST_FIELDS, log_request_line
from services.metrics import COMMANDS, REQUEST_SECONDS, outcome_of, record_pool

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests no route matched (keeps the label set small)."""
QUERY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


POOL_GAUGE_SECONDS = 0.5


class MetricsMiddleware:
    """Records each HTTP request's latency by route template; a request of another
    method than GET/HEAD/OPTIONS is a command, counted by its route's name and outcome.
    Also refreshes this process's pool gauges, at most every ``POOL_GAUGE_SECONDS``
    (a scrape reads them every few seconds; each refresh writes seven gauges)."""

    def __init__(self, app: ASGIApp, pools: dict[str, Any]) -> None:
        self.app = app
        self.pools = pools
        self._pools_recorded = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED_ROUTE
        method = str(scope["method"])
        REQUEST_SECONDS.labels(template, method, str(status)).observe(seconds)
        if method not in QUERY_METHODS and route is not None:
            COMMANDS.labels(getattr(route, "name", template), outcome_of(status)).inc()
        now = time.monotonic()
        if now - self._pools_recorded >= POOL_GAUGE_SECONDS:
            self._pools_recorded = now
            record_pools(self.pools)


def record_pools(pools: dict[str, Any]) -> None:
    """Set the pool gauges from ``pools`` (see ``pool_readers``)."""
    for name, stats in pools.items():
        record_pool(name, stats())


def pool_readers(database: Database, ledger: Any) -> dict[str, Any]:
    """The pools whose use ``MetricsMiddleware`` reports: the read models' and, on
    PostgreSQL, the event store's."""
    readers: dict[str, Any] = {}
    if database.dialect == "postgres":
        readers["read_models"] = database.pool_stats
        pool = getattr(getattr(ledger.recorder, "datastore", None), "pool", None)
        if pool is not None:
            readers["event_store"] = lambda: _stats(pool)
    return readers


def _stats(pool: Any) -> dict[str, int]:
    stats = pool.get_stats()
    return {
        "open": stats.get("pool_size", 0),
        "idle": stats.get("pool_available", 0),
        "waiting": stats.get("requests_waiting", 0),
        "max": pool.max_size,
    }


TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("salesledger.access")
ARRIVED_KEY = "salesledger.arrived"
"""Where in the request's scope the time it arrived is (``time.monotonic``): requests
that waited share a look at the organisation that began after they arrived
(``SharedOrganisation.get``)."""


def trace_context(traceparent: str | None) -> tuple[str, str | None, str]:
    """The trace id, the caller's span id (None if it sent no valid ``traceparent``) and
    the trace flags, per W3C Trace Context: an invalid header starts a new trace."""
    match = TRACEPARENT.match(traceparent or "")
    if match and set(match[1]) != {"0"} and set(match[2]) != {"0"}:
        return match[1], match[2], match[3]
    return secrets.token_hex(16), None, "01"


class RequestContextMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID`` if well-formed) and a span
    in the caller's trace (W3C ``traceparent``, or a new trace), binds them to every log
    record of the request, answers them in ``X-Request-ID`` and ``traceparent``, and logs
    one ``request`` line when the request ends. Every event the request causes records
    the correlation id (the caller's ``X-Correlation-ID`` if well-formed, else the trace
    id) and, as its causation id, the request id (``events.base.caused_by``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[ARRIVED_KEY] = time.monotonic()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        trace_id, parent_id, flags = trace_context(headers.get("traceparent"))
        given_correlation = headers.get("x-correlation-id", "")
        correlation_id = given_correlation if REQUEST_ID.match(given_correlation) else trace_id
        span_id = secrets.token_hex(8)
        bound = REQUEST_FIELDS.set(
            {
                "request_id": request_id,
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent_id,
                "correlation_id": correlation_id,
            }
        )
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    (b"x-correlation-id", correlation_id.encode()),
                    (b"traceparent", f"00-{trace_id}-{span_id}-{flags}".encode()),
                ]
            await send(message)

        try:
            with caused_by(correlation_id, request_id):  # on every event the request causes
                await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            log_request_line(
                access_log,
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            REQUEST_FIELDS.reset(bound)
