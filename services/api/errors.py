"""Errors as RFC 9457 problem details (``application/problem+json``): domain errors via
``commands.errors``, invalid requests as 422 naming the parameter, a failed precondition
as 412, a body too large as 413, lag as 504, an unreachable event store (or no free
connection in the process's budget) as 503."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from aggregates.errors import DomainError
from commands.errors import body_for, status_for
from projections.runner import ProjectionLagError
from services.moments import InvalidMomentError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:salesledger:problem:"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "not_allowed",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
}


def _encodable(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8 (a lone surrogate echoed
    from the request becomes ``\\ud800``), every number valid JSON (``inf`` a string)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    return value


class InvalidParam(BaseModel):
    """One invalid part of the request."""

    name: str = Field(examples=["as_of"])
    location: str = Field(examples=["query"], description="query, path, header or body")
    reason: str = Field(examples=["must be a date, a local time or a time with an offset"])


class Problem(BaseModel):
    """An error, as RFC 9457 problem details. ``error`` is the machine code (also the end
    of ``type``); other members depend on the problem (``existing_customer_id`` …). No
    ``instance``: a refusal reads the same whichever record was asked for."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[f"{PROBLEM_TYPE_BASE}rule_violation"])
    title: str = Field(examples=["Unprocessable Content"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["only a qualified deal may move past stage 1"])
    error: str = Field(examples=["rule_violation"])
    invalid_params: list[InvalidParam] | None = None


class InvalidParameterError(ValueError):
    """A request parameter the API cannot use (a cursor, a sort, a moment …)."""

    def __init__(self, name: str, reason: str, location: str = "query") -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.location = location


def problem(
    status: int,
    code: str,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **members: Any,
) -> JSONResponse:
    """A problem-details response."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_BASE}{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "error": code,
    }
    body.update(members)
    return JSONResponse(
        _encodable(jsonable_encoder(body, custom_encoder={Exception: str})),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def invalid_params_problem(request: Request, params: list[InvalidParam]) -> JSONResponse:
    names = ", ".join(dict.fromkeys(p.name for p in params))
    first = params[0].reason if params else "see invalid_params"
    return problem(
        422,
        "validation_error",
        f"invalid {names}: {first}",
        request,
        invalid_params=[p.model_dump() for p in params],
    )


def _validation_params(error: RequestValidationError) -> list[InvalidParam]:
    params = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ())]
        where = location[0] if location else "body"
        name = ".".join(location[1:]) or where
        params.append(InvalidParam(name=name, location=where, reason=str(item.get("msg", ""))))
    return params


def install_error_handlers(app: FastAPI) -> None:
    """Map every error a client can cause to a problem-details response."""

    @app.exception_handler(DomainError)
    def domain_error(request: Request, error: DomainError) -> JSONResponse:
        body = body_for(error)
        code, detail = body.pop("error"), body.pop("message")
        return problem(int(status_for(error)), code, detail, request, **body)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        headers = dict(error.headers) if error.headers else None
        return problem(error.status_code, code, str(error.detail), request, headers)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return invalid_params_problem(request, _validation_params(error))

    @app.exception_handler(InvalidParameterError)
    def invalid_parameter(request: Request, error: InvalidParameterError) -> JSONResponse:
        param = InvalidParam(name=error.name, location=error.location, reason=error.reason)
        return invalid_params_problem(request, [param])

    @app.exception_handler(InvalidMomentError)
    def invalid_moment(request: Request, error: InvalidMomentError) -> JSONResponse:
        param = InvalidParam(name=error.parameter, location="query", reason=str(error))
        return invalid_params_problem(request, [param])

    @app.exception_handler(ProjectionLagError)
    def projection_lag(request: Request, error: ProjectionLagError) -> JSONResponse:
        return problem(
            504,
            "projection_behind",
            str(error),
            request,
            {"Retry-After": "1"},
            projection=error.projection,
            requested_position=error.position,
            reached_position=error.reached,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(psycopg.OperationalError)  # also no pooled connection free in time
    def store_unavailable(request: Request, error: Exception) -> JSONResponse:
        return problem(
            503,
            "store_unavailable",
            "the event store could not be reached; a command may or may not have been "
            "recorded: retry it with the same Idempotency-Key to be sure",
            request,
            {"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "internal_error", "the server failed; this is a bug", request)
