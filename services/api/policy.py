"""The access policy (``services.access``) as one FastAPI dependency on every router."""

from __future__ import annotations

from eventsourcing.domain import Aggregate
from fastapi import Depends, HTTPException, Request, status
from fastapi.params import Depends as DependsParam

from services.access import AccessDeniedError, check_route
from services.api.aggregate_views import CHECKED_RECORDS_KEY
from services.api.dependencies import get_context
from services.api.filters import check_parameters
from services.api.routes import run_blocking
from services.api.security import Credentials, authenticate
from services.exports import record_export


async def enforce_access(request: Request, credentials: Credentials) -> None:
    """401 without a valid token; 422 for a parameter no store can look up; 403 unless
    the policy allows this route (and record). All in one worker thread: the token's
    check, the policy's and the record each may ask the store."""
    await run_blocking(_enforce_access, request, credentials)


def _enforce_access(request: Request, credentials: Credentials) -> None:
    actor = authenticate(request, credentials)
    ledger = get_context(request).ledger
    check_parameters(request)
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    read: dict[str, Aggregate] = {}
    request.scope[CHECKED_RECORDS_KEY] = read
    try:
        rule = check_route(request.method, path, dict(request.path_params), actor, ledger, read)
    except AccessDeniedError as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
    if rule.recorded:
        record_export(
            ledger,
            actor,
            f"{request.method} {path}",
            {**request.path_params, **dict(request.query_params)},
        )


ACCESS_CHECKED: list[DependsParam] = [Depends(enforce_access)]
"""Router dependencies that apply the policy: ``include_router(r, dependencies=ACCESS_CHECKED)``."""
