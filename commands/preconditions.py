"""What the caller of a command expects, set by the adapter around one request: the
version the changed record must be at (``If-Match``) and the fingerprint of the request
(bound to its idempotency key). ``SalesLedger`` checks them when it saves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from aggregates.errors import DomainError


@dataclass(frozen=True)
class Expectations:
    """``versions``: the record must be at one of these versions before the change (None:
    any); ``fingerprint``: what identifies the request behind an idempotency key."""

    versions: frozenset[int] | None = None
    fingerprint: str | None = None


_NOTHING = Expectations()
_EXPECTED: ContextVar[Expectations | None] = ContextVar("command_expectations", default=None)


@contextmanager
def expecting(expectations: Expectations) -> Iterator[None]:
    """Commands run inside see ``expectations`` (for this context only)."""
    token = _EXPECTED.set(expectations)
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def expected() -> Expectations:
    return _EXPECTED.get() or _NOTHING


class PreconditionFailedError(DomainError):
    """The record is not at the version the caller said it must be (``If-Match``)."""

    def __init__(self, expected_versions: frozenset[int], current_version: int) -> None:
        wanted = " or ".join(str(v) for v in sorted(expected_versions)) or "a version it is at"
        super().__init__(
            f"the record is at version {current_version}, not {wanted}: "
            "reload it and decide again"
        )
        self.expected_versions = sorted(expected_versions)
        self.current_version = current_version


class IdempotencyKeyReusedError(DomainError):
    """An idempotency key sent again with a different request."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request; "
            "use a new key for a new request"
        )
