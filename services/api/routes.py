"""The API's routers: a blocking endpoint runs in one worker thread, and its answer is
checked against its model on the event loop.

FastAPI runs a plain ``def`` endpoint in a worker thread and then, because the endpoint
was not ``async``, checks its answer against the response model in a second hand-over.
Each hand-over costs the event loop about as much as a short query (the thread pool's
limiter, a cancel scope, a queue, a wake-up), and under load they were the largest
share of an API process's time after FastAPI's own routing. ``LedgerRoute`` gives
FastAPI an ``async`` endpoint that runs the blocking one in the pool: one hand-over,
and the model check where it costs nothing extra.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.routing import APIRoute

T = TypeVar("T")

DEFAULT_THREADS = 4
"""Threads of an API process for blocking work (``LEDGER_API_THREADS``). Under the HTTP
mix at 16 clients on 2 cores (``bench/http.py``, two API processes), 3–4 threads gave
more requests per second and a lower p99 than 6 or 40: the event loop does most of a
request's Python work, and every thread more competes with it for the interpreter."""
WAITING_THREADS = 32
"""Threads for waits that hold no connection and do no work, such as read-your-writes
(``min_position``, up to 5 s): apart, so that a few waits never hold up every request."""
_work = ThreadPoolExecutor(DEFAULT_THREADS, thread_name_prefix="api-worker")
_waiting = ThreadPoolExecutor(WAITING_THREADS, thread_name_prefix="api-waiting")
# (A pool starts its threads on first use.)


def use_threads(count: int) -> None:
    """Run blocking work in ``count`` threads from now on (``create_app``)."""
    global _work
    if _work._max_workers != count:  # noqa: SLF001 - its size
        _work.shutdown(wait=False)
        _work = ThreadPoolExecutor(count, thread_name_prefix="api-worker")


async def run_blocking(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in the pool, in a copy of the caller's context (the
    request's ids, the events' causation). The event loop's own executor hand-over: half
    the event loop's time of the thread pool FastAPI uses (whose limiter and cancel
    scope are not needed here), measured at 36 µs against 72–87 µs a call."""
    return await _run_in(_work, function, *args, **kwargs)


async def run_waiting(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """As ``run_blocking``, for a wait (``WAITING_THREADS``)."""
    return await _run_in(_waiting, function, *args, **kwargs)


async def _run_in(
    pool: ThreadPoolExecutor, function: Callable[..., T], /, *args: Any, **kwargs: Any
) -> T:
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


def in_worker_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` as a coroutine function running it in the thread pool (the same
    signature, name and documentation); an ``async`` one as it is."""
    if inspect.iscoroutinefunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await run_blocking(endpoint, *args, **kwargs)

    return run


class LedgerRoute(APIRoute):
    """A route whose blocking endpoint costs one thread hand-over."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, in_worker_thread(endpoint), **kwargs)


class LedgerRouter(APIRouter):
    """An ``APIRouter`` of ``LedgerRoute``s."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", LedgerRoute)
        super().__init__(**kwargs)
