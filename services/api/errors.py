"""Errors as JSON: domain errors via ``commands.errors``, validation as 422, lag as 504,
an unreachable event store, or no free connection in the process's budget, as 503."""

from __future__ import annotations

import math
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aggregates.errors import DomainError
from commands.errors import body_for, status_for
from projections.runner import ProjectionLagError

_HTTP_CODES = {
    401: "unauthenticated",
    403: "not_allowed",
    404: "not_found",
    405: "method_not_allowed",
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


def install_error_handlers(app: FastAPI) -> None:
    """Map every error a client can cause to a clear JSON body and status."""

    @app.exception_handler(DomainError)
    def domain_error(request: Request, error: DomainError) -> JSONResponse:
        return JSONResponse(body_for(error), status_code=int(status_for(error)))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": _HTTP_CODES.get(error.status_code, "http_error"), "message": error.detail},
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {
                "error": "validation_error",
                "message": "the request is not valid; see details",
                "details": _encodable(
                    jsonable_encoder(error.errors(), custom_encoder={Exception: str})
                ),
            },
            status_code=422,
        )

    @app.exception_handler(ProjectionLagError)
    def projection_lag(request: Request, error: ProjectionLagError) -> JSONResponse:
        return JSONResponse(
            {
                "error": "projection_behind",
                "message": str(error),
                "projection": error.projection,
                "requested_position": error.position,
                "reached_position": error.reached,
            },
            status_code=504,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(psycopg.OperationalError)  # also no pooled connection free in time
    def store_unavailable(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(
            {
                "error": "store_unavailable",
                "message": "the event store could not be reached; a command may or may not "
                "have been recorded: retry it with the same Idempotency-Key to be sure",
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )
