"""The OpenAPI document, completed: every status an operation can answer with its
problem-details schema and an example, CSV where a route offers it, and the ``Link``,
``ETag`` and ``Idempotent-Replayed`` headers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.api.csv_export import CSV_CONTENT
from services.api.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, Problem

EVERY_OPERATION = {
    401: ("unauthenticated", "send an API token as 'Authorization: Bearer <token>'"),
    403: ("not_allowed", "you are not allowed to do this here"),
    404: ("not_found", "no opportunity 5b0c6c1e-54f8-4f57-9e4f-7a0d2f1b8c11"),
    422: ("validation_error", "invalid as_of: must be a date, a local time or an offset time"),
    503: ("store_unavailable", "the event store could not be reached; retry"),
}
CHANGES = {
    409: ("concurrency_conflict", "the record was changed by someone else at the same time"),
    412: ("precondition_failed", "the record is at version 5, not 4: reload it and decide again"),
    413: ("body_too_large", "the request body is larger than 262144 bytes"),
}
LAGGING = {504: ("projection_behind", "projection funnel has not reached position 1042 yet")}
CHANGING_METHODS = {"post", "put", "patch", "delete"}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            complete(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> None:
    """Add the problem schema and every operation's statuses to ``document``."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _complete_operation(path, method, operation)


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    parameters = {p["name"] for p in operation.get("parameters", [])}
    responses = operation.setdefault("responses", {})
    statuses = dict(EVERY_OPERATION)
    if method in CHANGING_METHODS:
        statuses.update(CHANGES)
    if "min_position" in parameters:
        statuses.update(LAGGING)
    for status, (code, detail) in statuses.items():
        responses[str(status)] = _problem_response(status, code, detail, responses.get(str(status)))
    success = next((r for s, r in responses.items() if s.startswith("2")), None)
    if success is None:
        return
    headers = success.setdefault("headers", {})
    if "format" in parameters:
        success.setdefault("content", {}).update(CSV_CONTENT)
    if "cursor" in parameters:
        headers["Link"] = _header('RFC 8288: `<…?cursor=…>; rel="next"` while there is more')
    single_record = "cursor" not in parameters and "format" not in parameters
    if method == "get" and "{" in path and single_record:
        headers["ETag"] = _header('the record\'s version, e.g. `"7"`: send it as `If-Match`')
    if method in CHANGING_METHODS:
        headers["Idempotent-Replayed"] = _header(
            "`true` when this answers a repeat of an earlier request (same Idempotency-Key)"
        )
        operation.setdefault("parameters", []).append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "Change only if the record is at this version (its `ETag`); "
                "412 with the current version otherwise",
                "schema": {"type": "string", "maxLength": 200},
            }
        )


def _problem_response(
    status: int, code: str, detail: str, existing: dict[str, Any] | None
) -> dict[str, Any]:
    example = {
        "type": f"{PROBLEM_TYPE_BASE}{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "error": code,
    }
    if existing is not None:
        for content in existing.get("content", {}).values():
            example = {**example, **content.get("example", {})}
    own = {
        media_type: content
        for media_type, content in (existing or {}).get("content", {}).items()
        if media_type != PROBLEM_MEDIA_TYPE
        and "HTTPValidationError" not in str(content.get("schema", {}))
    }
    return {
        "description": (existing or {}).get("description") or HTTPStatus(status).phrase,
        "content": {
            PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": example,
            },
            **own,  # a route's own answer at this status (an import's report of problems)
        },
    }


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}
