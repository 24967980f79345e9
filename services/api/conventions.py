"""HTTP conventions around every request, as one ASGI middleware:

- a request body larger than ``LEDGER_MAX_BODY_BYTES`` (default 256 KiB) → 413;
- ``If-Match`` on a change: the record must be at that version (its ``ETag``), else 412
  (``commands.preconditions``);
- ``Idempotency-Key`` bound to a fingerprint of the request (method, path, query and
  body): the same key with another request → 422; a replay answers as the first time,
  with ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import hashlib
import json
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commands.preconditions import Expectations, expecting
from services.api.errors import problem

CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REPLAYED_HEADER = "Idempotent-Replayed"


class _Outcome:
    """What the route found out about the request (filled in from the route's thread)."""

    def __init__(self) -> None:
        self.replayed = False


_OUTCOME: ContextVar[_Outcome | None] = ContextVar("request_outcome", default=None)


def mark_replayed() -> None:
    """The command was already recorded under this request's idempotency key."""
    outcome = _OUTCOME.get()
    if outcome is not None:
        outcome.replayed = True


def etag(version: int) -> str:
    """A record's strong entity tag: its aggregate version."""
    return f'"{version}"'


def if_match_versions(header: str | None) -> frozenset[int] | None:
    """The versions an ``If-Match`` header allows (None: no header, or ``*``). A tag
    that is no version of ours matches nothing."""
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        text = tag.strip().removeprefix("W/").strip('"')
        if text.isdigit() and len(text) < 19:
            versions.add(int(text))
    return frozenset(versions)


def fingerprint(scope: Scope, body: bytes) -> str:
    """The request's fingerprint: method, path, query and body (JSON bodies compared by
    value, so that key order and spacing do not matter)."""
    try:
        content: Any = json.loads(body) if body else None
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")):
        digest.update(part.encode() + b"\0")
    digest.update(canonical)
    return digest.hexdigest()[:32]


class HttpConventions:
    """The middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        await self._call(scope, receive, send, headers, body)

    async def _call(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, body: bytes
    ) -> None:
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if scope["method"] not in CHANGING_METHODS:
            await self.app(scope, replay, send)
            return
        outcome = _Outcome()
        token = _OUTCOME.set(outcome)

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start" and outcome.replayed:
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"idempotent-replayed", b"true")],
                }
            await send(message)

        expectations = Expectations(
            versions=if_match_versions(headers.get("if-match")),
            fingerprint=fingerprint(scope, body),
        )
        try:
            with expecting(expectations):
                await self.app(scope, replay, send_marked)
        finally:
            _OUTCOME.reset(token)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "body_too_large",
            f"the request body is larger than {self.max_body_bytes} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
