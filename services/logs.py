"""Structured logs: one JSON object per line, from structlog and from the standard
``logging`` loggers (uvicorn's, the library's) alike, with the request's ids bound by
``services.api.observability.RequestContextMiddleware``."""

from __future__ import annotations

import contextlib
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

import orjson
import structlog

REQUEST_FIELDS: ContextVar[dict[str, Any] | None] = ContextVar(
    "salesledger_request_fields", default=None
)
"""The ids of the request being served (``services.api.observability``), added to every
log record: one context variable set per request, where binding each id as a structlog
context variable cost a variable per id, per request."""


def merge_request_fields(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: the request's ids into ``event`` (which keeps its own)."""
    fields = REQUEST_FIELDS.get()
    if fields:
        for key, value in fields.items():
            event.setdefault(key, value)
    return event


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    merge_request_fields,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(
    level: int = logging.INFO, *, as_json: bool = True, stream: IO[str] | None = None
) -> None:
    """Route every log record to ``stream`` (default stderr) as JSON (or as readable
    text, ``as_json=False``)."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    global _json_handler
    _json_handler = handler if as_json else None
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # uvicorn writes its access line when this logger has a handler, its own or the
    # root's: the API writes its own (``salesledger.access``, with the request's ids).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers = []
    uvicorn_access.propagate = False
    logging.getLogger("kafka").setLevel(max(level, logging.ERROR))


_json_handler: logging.StreamHandler[Any] | None = None
"""The handler ``configure_logging`` installed, while its lines are JSON."""


def log_request_line(logger: logging.Logger, **fields: Any) -> None:
    """One ``request`` line at INFO from ``logger`` (the access log), as the formatter
    would write it: with JSON logs, rendered by orjson and written straight to the
    handler, one line per request without a ``LogRecord`` and a pass through every
    processor (a tenth of an API process's time under load went on that)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _json_handler
    if handler is None:
        structlog.get_logger(logger.name).info("request", **fields)
        return
    line = {**(REQUEST_FIELDS.get() or {}), **fields, "event": "request"}
    line["level"] = "info"
    line["logger"] = logger.name
    line["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    text = orjson.dumps(line, default=str).decode() + handler.terminator
    try:
        with handler.lock or contextlib.nullcontext():
            handler.stream.write(text)
            handler.flush()
    except Exception:  # noqa: BLE001 - a closed stream: as logging would, never the request's error
        structlog.get_logger(logger.name).info("request", **fields)

