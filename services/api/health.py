"""Liveness, readiness and metrics: what a load balancer, compose and Prometheus ask."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from projections.runner import POSITIONS_TABLE
from services.api.dependencies import ApiContext, get_context
from services.api.routes import LedgerRouter
from services.bootstrap import UNREACHABLE_ERRORS
from services.metrics import LedgerCollector, exposition

router = LedgerRouter(tags=["operations"])


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process answers (no dependency is checked)."""
    return {"status": "alive"}


@router.get(
    "/readyz",
    responses={503: {"description": "the store is unreachable or a projection lags"}},
)
def readyz(request: Request) -> JSONResponse:
    """Ready: the event store and read models answer, and every projection is within
    ``LEDGER_READY_LAG_MAX`` events of the ledger's head."""
    context = get_context(request)
    try:
        report = _readiness(context)
    except UNREACHABLE_ERRORS as error:
        return JSONResponse(
            {"status": "unavailable", "reason": f"the store is unreachable: {error}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    ready = not report["lagging"]
    return JSONResponse(
        {"status": "ready" if ready else "lagging", **report},
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "1"},
    )


def _readiness(context: ApiContext) -> dict[str, Any]:
    head = context.ledger.store.max_committed_notification_id()
    with context.database.transaction() as tx:
        rows = tx.execute(f"SELECT name, position FROM {POSITIONS_TABLE}")
    positions = {str(row["name"]): int(row["position"]) for row in rows}
    names = context.projection_names or sorted(positions)
    bound = context.settings.ready_lag_max
    lags = {name: max(0, head - positions.get(name, 0)) for name in names}
    return {
        "head": head,
        "lag_bound": bound,
        "projections": lags,
        "lagging": sorted(name for name, lag in lags.items() if lag > bound),
    }


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics of every API process, and positions read from the database."""
    context = get_context(request)
    collector = LedgerCollector(context.ledger.store.max_committed_notification_id,
                                context.database)
    return Response(exposition(collector), media_type=CONTENT_TYPE_LATEST)
