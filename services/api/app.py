"""Builds the FastAPI application from settings: the one place the API is wired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from commands.ledger import SalesLedger
from projections.registry import all_projections
from projections.runner import ProjectionRunner, ProjectionWorker
from services.api import health, integrity, schemas, tokens
from services.api.conventions import HttpConventions
from services.api.dependencies import ApiContext
from services.api.docs import install_offline_docs
from services.api.errors import install_error_handlers
from services.api.observability import (
    MetricsMiddleware,
    RequestContextMiddleware,
    pool_readers,
    record_pools,
)
from services.api.openapi_doc import install_openapi
from services.api.policy import ACCESS_CHECKED
from services.api.routers import (
    analytics,
    audit,
    customers,
    forecasts,
    funnel,
    imports,
    listings,
    monitoring,
    opportunities,
    organisation,
    people,
    plans,
)
from services.api.routes import use_threads
from services.bootstrap import EVENTS_CHANNEL, build_ledger, until_reachable
from services.logs import configure_logging
from services.metrics import forget_this_process
from services.read_store import open_read_store
from services.settings import Settings
from services.web import install_dashboard

DESCRIPTION = """
Commands of the sales-process ledger and queries of its live projections.

Authenticate with `Authorization: Bearer <token>` (`salesledger token PERSON`).
Every command returns the ledger `position` of its last event; pass it to a query as
`min_position` to read your own write (the query waits up to 5 s, then answers 504).
Errors are RFC 9457 problem details (`application/problem+json`: `type`, `title`,
`status`, `detail`, the machine code `error`, and the problem's own members such as
`existing_customer_id`): 401 unauthenticated, 403 not allowed, 404 not found, 409
conflict or duplicate, 412 `If-Match` not met (with `current_version`), 413 body too
large, 422 invalid (`invalid_params` names each parameter) or against a business rule,
503 event store unreachable or busy (retry after `Retry-After` seconds), 504 projection
still behind.

Lists take `limit` and an opaque `cursor`; the next page's address is in the
`Link: <…>; rel="next"` header (and `next_cursor`). Lists and reports answer CSV for
`?format=csv` or `Accept: text/csv`. Time parameters (`as_of`, `since`, `until`, close
dates) take a date, a local time (in the organisation's time zone, `LEDGER_TIME_ZONE`,
UTC by default) or a time with an offset. Amounts are decimal strings.
"""


def create_app(
    settings: Settings | None = None,
    ledger: SalesLedger | None = None,
    *,
    project_in_process: bool | None = None,
) -> FastAPI:
    """The API. ``project_in_process`` (default: on the embedded SQLite store) runs the
    projection worker in a background thread while the app runs."""
    settings = settings or Settings()
    store = ledger or until_reachable(lambda: build_ledger(settings), "the event store")
    database = open_read_store(settings)
    if project_in_process is None:
        project_in_process = settings.store == "sqlite"
    runner = until_reachable(
        lambda: ProjectionRunner(store, database, all_projections()), "the read store"
    )
    ledger = store
    worker = None
    if project_in_process:
        worker = ProjectionWorker(runner, EVENTS_CHANNEL, poll_interval=0.2)
    context = ApiContext(
        settings=settings,
        ledger=ledger,
        database=database,
        worker=worker,
        projection_names=runner.names,
    )

    pools = pool_readers(database, ledger)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        record_pools(pools)  # a process reports its pools before its first request
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            forget_this_process()

    app = FastAPI(
        title="Sales ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    use_threads(settings.api_threads)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(HttpConventions, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, pools=pools)
    app.add_middleware(RequestContextMiddleware)
    # FastAPI tries the routes in the order they were added, so the API's routers come
    # first, the busiest first (no two routes answer the same request, so the order is
    # only about speed: tests/e2e/test_api_routes.py), then health, schemas and docs.
    for router in (
        funnel.router,
        forecasts.router,
        opportunities.router,
        integrity.router,
        listings.router,
        customers.router,
        people.router,
        plans.router,
        analytics.router,
        imports.router,
        monitoring.router,
        audit.router,
        tokens.router,
        organisation.router,
    ):
        app.include_router(router, dependencies=ACCESS_CHECKED)
    app.include_router(health.router)
    app.include_router(schemas.router)
    install_offline_docs(app)
    app.include_router(integrity.public_router)
    install_dashboard(app)
    return app


def create_api_worker() -> FastAPI:
    """One of several API processes (``salesledger serve --workers N``): settings from
    the environment, projections kept current by ``salesledger project`` elsewhere;
    its logs as JSON lines."""
    configure_logging()
    return create_app(project_in_process=False)
