

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = structlog.get_logger("salesledger.access")


def trace_context(traceparent: str | None) -> tuple[str, str | None, str]:
    """The trace id, the caller's span id (None if it sent no valid ``traceparent``) and
    the trace flags, per W3C Trace Context: an invalid header starts a new trace."""
    match = TRACEPARENT.match(traceparent or "")
    if match and set(match[1]) != {"0"} and set(match[2]) != {"0"}:
        return match[1], match[2], match[3]
    return secrets.token_hex(16), None, "01"


class RequestContextMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID`` if well-formed) and a span
    in the caller's trace (W3C ``traceparent``, or a new trace), binds them to every log
    record of the request, answers them in ``X-Request-ID`` and ``traceparent``, and logs
    one ``request`` line when the request ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        trace_id, parent_id, flags = trace_context(headers.get("traceparent"))
        span_id = secrets.token_hex(8)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id, trace_id=trace_id, span_id=span_id, parent_span_id=parent_id
        )
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    (b"traceparent", f"00-{trace_id}-{span_id}-{flags}".encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            access_log.info(
                "request", method=scope["method"], route=route, status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
