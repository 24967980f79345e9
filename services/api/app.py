"""Builds the FastAPI application from settings: the one place the API is wired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from commands.ledger import SalesLedger
from projections.registry import all_projections
from projections.runner import ProjectionRunner, ProjectionWorker
from services.api import health, integrity, schemas, tokens
from services.api.dependencies import ApiContext
from services.api.errors import install_error_handlers
from services.api.observability import MetricsMiddleware, pool_readers
from services.api.policy import ACCESS_CHECKED
from services.api.routers import (
    analytics,
    audit,
    customers,
    forecasts,
    funnel,
    imports,
    monitoring,
    opportunities,
    people,
    plans,
)
from services.bootstrap import EVENTS_CHANNEL, build_ledger, until_reachable
from services.read_store import open_read_store
from services.settings import Settings
from services.web import install_dashboard

DESCRIPTION = """
Commands of the sales-process ledger and queries of its live projections.

Authenticate with `Authorization: Bearer <token>` (`salesledger token PERSON`).
Every command returns the ledger `position` of its last event; pass it to a query as
`min_position` to read your own write (the query waits up to 5 s, then answers 504).
Errors are JSON `{"error": code, "message": text}`: 401 unauthenticated, 403 not allowed,
404 not found, 409 conflict or duplicate, 422 invalid or against a business rule,
503 store unavailable or busy (retry after `Retry-After` seconds), 504 projection still behind.
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(
        title="Sales ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, pools=pool_readers(database, ledger))
    app.include_router(health.router)
    app.include_router(schemas.router)
    for router in (
        people.router,
        customers.router,
        opportunities.router,
        plans.router,
        forecasts.router,
        funnel.router,
        analytics.router,
        imports.router,
        monitoring.router,
        audit.router,
        tokens.router,
        integrity.router,
    ):
        app.include_router(router, dependencies=ACCESS_CHECKED)
    app.include_router(integrity.public_router)
    install_dashboard(app)
    return app


def create_api_worker() -> FastAPI:
    """One of several API processes (``salesledger serve --workers N``): settings from
    the environment, projections kept current by ``salesledger project`` elsewhere."""
    return create_app(project_in_process=False)
