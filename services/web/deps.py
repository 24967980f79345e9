"""What dashboard routes depend on: the signed-in viewer and checked forms."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Form, Request

from services.api.dependencies import ApiContext, get_context
from services.web.guard import PageError
from services.web.session import Viewer, csrf_matches, current_viewer


class SignInRequired(Exception):
    """No valid session: the visitor is sent to the sign-in page, then back to ``next``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.location = f"/web/signin?next={quote(next_url, safe='/')}"


def page_viewer(request: Request) -> Viewer:
    viewer = current_viewer(request, get_context(request).ledger)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(page_viewer)]
WebContextDep = Annotated[ApiContext, Depends(get_context)]


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (the browser's Origin header says so)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise PageError(403, "this form was posted from another site")


def checked_form(
    request: Request, viewer: ViewerDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Viewer:
    """The viewer, once the form's CSRF token and origin are checked."""
    same_origin(request)
    if not csrf_matches(viewer.token, csrf):
        raise PageError(403, "the form has expired or did not come from this dashboard; reload")
    return viewer


FormViewerDep = Annotated[Viewer, Depends(checked_form)]


def safe_next(next_url: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not next_url or not next_url.startswith("/") or next_url[1:2] in ("/", "\\"):
        return "/web/"
    return next_url
