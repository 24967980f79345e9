"""The one place that maps domain errors to HTTP status codes and JSON error bodies."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aggregates.errors import (
    AlreadyIssuedError,
    ConcurrencyConflictError,
    DomainError,
    DuplicateCustomerError,
    InvalidFieldError,
    NotAllowedError,
    NotFoundError,
    RuleViolationError,
)

STATUS_BY_ERROR: dict[type[DomainError], HTTPStatus] = {
    NotFoundError: HTTPStatus.NOT_FOUND,
    AlreadyIssuedError: HTTPStatus.CONFLICT,
    NotAllowedError: HTTPStatus.FORBIDDEN,
    ConcurrencyConflictError: HTTPStatus.CONFLICT,
    DuplicateCustomerError: HTTPStatus.CONFLICT,
    RuleViolationError: HTTPStatus.UNPROCESSABLE_ENTITY,
}

CODE_BY_ERROR: dict[type[DomainError], str] = {
    NotFoundError: "not_found",
    NotAllowedError: "not_allowed",
    ConcurrencyConflictError: "concurrency_conflict",
    DuplicateCustomerError: "duplicate_customer",
    InvalidFieldError: "invalid_field",
    AlreadyIssuedError: "already_issued",
    RuleViolationError: "rule_violation",
}


def status_for(error: DomainError) -> HTTPStatus:
    """The HTTP status of a domain error (its nearest mapped class; 422 otherwise)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return HTTPStatus.UNPROCESSABLE_ENTITY


def body_for(error: DomainError) -> dict[str, Any]:
    """The JSON body of a domain error: a machine code, a message, and any pointers."""
    code = next(
        (CODE_BY_ERROR[cls] for cls in type(error).__mro__ if cls in CODE_BY_ERROR),
        "domain_error",
    )
    body: dict[str, Any] = {"error": code, "message": str(error)}
    if isinstance(error, DuplicateCustomerError):
        body["existing_customer_id"] = error.existing_customer_id
        body["matched_on"] = error.matched_on
    if isinstance(error, InvalidFieldError):
        body["field"] = error.field
    return body
