"""HTML rendering: the Jinja2 templates, their filters, and HTML error pages."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from aggregates.errors import DomainError
from commands.errors import status_for
from projections.runner import ProjectionLagError
from services.web.deps import SignInRequired
from services.web.guard import PageError

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Nothing is loaded from elsewhere; no page may be framed or leak its URL (a sign-in link)."""


def money(value: Any) -> str:
    """An amount with thousands separators and no cents unless it has some."""
    amount = Decimal(str(value or 0))
    return f"{amount:,.0f}" if amount == amount.to_integral() else f"{amount:,.2f}"


def percent(value: Any) -> str:
    return "–" if value is None else f"{Decimal(str(value)) * 100:.0f} %"


def when(value: Any) -> str:
    """A stored ISO timestamp, to the minute, in UTC."""
    text = str(value or "")
    return text[:16].replace("T", " ") + (" UTC" if len(text) > 10 else "")


def shown(value: Any) -> str:
    """A field's value as text: none as a dash, text as it is, anything else as JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def as_json(value: Any) -> Markup:
    """Data for a page's scripts, safe inside ``<script type="application/json">``."""
    text = json.dumps(value, default=str).replace("<", "\\u003c")
    return Markup(text)  # noqa: S704 - escaped above


environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True
)
environment.filters.update(
    money=money, percent=percent, when=when, as_json=as_json, shown=shown
)


def render(request: Request, template: str, status: int = 200, **values: Any) -> Response:
    """Render ``template`` with ``values`` (and the request) as an HTML response."""
    html = environment.get_template(template).render(request=request, **values)
    return Response(
        html, status_code=status, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
    )


def error_page(request: Request, status: int, message: str) -> Response:
    viewer = getattr(request.state, "viewer", None)
    return render(request, "error.html", status, viewer=viewer, code=status, message=message)


class PageRoute(APIRoute):
    """A dashboard route: every error a visitor can cause becomes an HTML page, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as redirect:
                return RedirectResponse(redirect.location, status_code=303)
            except PageError as error:
                return error_page(request, error.status, error.message)
            except DomainError as error:
                return error_page(request, int(status_for(error)), str(error))
            except RequestValidationError as error:
                fields = ", ".join(
                    ".".join(str(p) for p in e["loc"][1:]) or "request" for e in error.errors()
                )
                return error_page(request, 422, f"not a valid value: {fields}")
            except ProjectionLagError as error:
                return error_page(request, 504, str(error))

        return handle
