"""The trivial FastAPI app ``bench/http.py`` measures the ledger against: per request one
``SELECT 1`` (reads) or one single-row ``INSERT`` (writes) through a psycopg pool.

    uvicorn bench.baseline_app:create_app --factory --workers N

It is served exactly as the ledger is (uvicorn, the same worker count), so that what the
ratio between the two shows is the ledger's own work per request, not the HTTP stack's.
The database comes from ``BENCH_BASELINE_CONNINFO`` (a libpq string); its ``bench_raw``
table is made by ``bench.harness.fresh_database``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

PAYLOAD = b"x" * 200
POOL_SIZE = 10


def create_app() -> FastAPI:
    """One pool per worker process, opened at start-up, closed at shutdown."""
    pool: ConnectionPool[Any] = ConnectionPool(
        os.environ["BENCH_BASELINE_CONNINFO"],
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True},
        open=False,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=True)
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="baseline", lifespan=lifespan)

    @app.get("/read")
    def read() -> dict[str, int]:
        with pool.connection() as conn:
            row = conn.execute("SELECT 1", prepare=True).fetchone()
        return {"value": int(row[0]) if row else 0}

    @app.post("/write", status_code=201)
    def write() -> dict[str, str]:
        key = uuid.uuid4()
        with pool.connection() as conn:
            conn.execute(
                "INSERT INTO bench_raw (id, payload) VALUES (%s, %s)", (key, PAYLOAD), prepare=True
            )
        return {"id": str(key)}

    return app
