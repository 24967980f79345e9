"""An ASGI middleware that times every request and counts commands for ``/metrics``."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.database import Database
from services.metrics import COMMANDS, REQUEST_SECONDS, outcome_of, record_pool

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests no route matched (keeps the label set small)."""
QUERY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class MetricsMiddleware:
    """Records each HTTP request's latency by route template; a request of another
    method than GET/HEAD/OPTIONS is a command, counted by its route's name and outcome.
    Also refreshes this process's pool gauges."""

    def __init__(self, app: ASGIApp, pools: dict[str, Any]) -> None:
        self.app = app
        self.pools = pools

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
        for name, stats in self.pools.items():
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
