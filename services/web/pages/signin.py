"""Signing in (a token or a one-time link, exchanged for a session cookie) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from services.web.deps import FormViewerDep, WebContextDep, safe_next, same_origin
from services.web.rendering import PageRoute, render
from services.web.session import (
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    SignInError,
    current_viewer,
    end_session,
    pre_session_secret,
    set_session_cookie,
    start_session,
)

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

Secret = Annotated[str, Form(min_length=1, max_length=200)]


def _form(request: Request, template: str, status: int = 200, **values: object) -> Response:
    response = Response()
    secret = pre_session_secret(request, response)
    page = render(request, template, status, viewer=None, csrf=secret, **values)
    for key, value in response.headers.items():
        if key == "set-cookie":
            page.headers.append(key, value)
    return page


@router.get("/signin")
def signin_page(request: Request, context: WebContextDep, next: str | None = None) -> Response:
    if current_viewer(request, context.ledger) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, "signin.html", next=safe_next(next))


@router.post("/signin")
def signin(
    request: Request,
    context: WebContextDep,
    token: Secret,
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/web/",
) -> Response:
    return _exchange(request, context, token, csrf, next, one_time=False)


@router.get("/signin/link")
def signin_link_page(request: Request, code: str = "") -> Response:
    """Confirm before using the link, so a link previewer cannot use it up."""
    return _form(request, "signin_link.html", code=code)


@router.post("/signin/link")
def signin_with_link(
    request: Request,
    context: WebContextDep,
    code: Secret,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    return _exchange(request, context, code, csrf, "/web/", one_time=True)


def _exchange(
    request: Request,
    context: WebContextDep,
    secret: str,
    csrf: str,
    next_url: str,
    *,
    one_time: bool,
) -> Response:
    same_origin(request)
    expected = request.cookies.get(PRE_SESSION_COOKIE)
    template = "signin_link.html" if one_time else "signin.html"
    if not expected or csrf != expected:
        message = "the sign-in form has expired; please try again"
        return _form(request, template, 403, error=message, next=safe_next(next_url), code="")
    try:
        session = start_session(context.ledger, secret.strip(), one_time=one_time)
    except SignInError as error:
        return _form(request, template, 401, error=str(error), next=safe_next(next_url), code="")
    response = RedirectResponse(safe_next(next_url), status_code=303)
    set_session_cookie(request, response, session)
    return response


@router.post("/signout")
def signout(viewer: FormViewerDep, context: WebContextDep) -> Response:
    end_session(context.ledger, viewer)
    response = RedirectResponse("/web/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
