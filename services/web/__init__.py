"""The web dashboard: server-rendered pages on the API's own app, under ``/web``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.web.pages import (
    analytics,
    audit,
    forecasts,
    home,
    live,
    monitoring,
    pipeline,
    plans,
    records,
    signin,
)
from services.web.rendering import STATIC


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` (pages under ``/web``, assets under ``/web/static``)."""

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/web/", status_code=307)

    pages = (signin, live, home, pipeline, records, analytics, forecasts, plans, monitoring, audit)
    for page in pages:
        app.include_router(page.router)
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")
