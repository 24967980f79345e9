"""Live refresh: the data version as an ETag, cheap to poll (304 while nothing moved)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from services.web import queries
from services.web.deps import WebContextDep
from services.web.session import current_viewer

router = APIRouter(prefix="/web", include_in_schema=False)


@router.get("/live")
def live_version(request: Request, context: WebContextDep) -> Response:
    """The version of the ledger and its projections; a page refetches itself when it
    moves. Nothing (204) without a session: the data is not revealed, not even its size."""
    if current_viewer(request, context.ledger) is None:
        return Response(status_code=204)  # signed out meanwhile: nothing to follow
    version = queries.data_version(context.ledger, context.database)
    etag = f'"{version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return JSONResponse({"version": version}, headers=headers)
