"""The auditor's page: audit-trail search by aggregate, actor and time; chain verification
(with the claims checked against the events, for the whole ledger);
a signed digest and a deal's history to download."""

from __future__ import annotations

import json
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from projections.audit import query_audit_trail
from services.api.integrity import latest_head
from services.claims_audit import audit_claims
from services.integrity import ChainVerifier
from services.web import queries
from services.web.deps import ViewerDep, WebContextDep
from services.web.guard import authorize
from services.web.pages.records import parse_moment
from services.web.rendering import PageRoute, render

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)


@router.get("/audit")
def audit_page(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    aggregate_id: str | None = None,
    by: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
    verify: bool = False,
) -> Response:
    ledger = context.ledger
    criteria = {"aggregate_id": aggregate_id or None, "by": by or None}
    criteria.update(since=since or None, until=until or None)
    query = {**criteria, "after": after or None}
    authorize(ledger, viewer, "GET /audit", query=query)
    page = query_audit_trail(
        context.database,
        ledger,
        aggregate_id=criteria["aggregate_id"],
        actor=criteria["by"],
        since=parse_moment(criteria["since"]),
        until=parse_moment(criteria["until"]),
        after=after,
        limit=100,
    )
    verification = None
    verifier = ChainVerifier(ledger.recorder)  # type: ignore[arg-type]
    if criteria["aggregate_id"] and _is_uuid(criteria["aggregate_id"]):
        report = verifier.verify_aggregate(UUID(criteria["aggregate_id"]))
        verification = {"scope": "this aggregate", "report": report}
    elif verify:
        authorize(ledger, viewer, "GET /integrity/heads/latest")
        verification = {
            "scope": "the whole ledger",
            "report": verifier.verify_range(),
            "claims": audit_claims(ledger),
        }
    return render(
        request,
        "audit.html",
        viewer=viewer,
        page="audit",
        version=queries.data_version(ledger, context.database),
        entries=page,
        criteria=criteria,
        verification=verification,
    )


@router.get("/audit/digest.json")
def digest_download(request: Request, viewer: ViewerDep, context: WebContextDep) -> Response:
    """The latest signed tree head, as ``GET /integrity/heads/latest`` serves it."""
    authorize(context.ledger, viewer, "GET /integrity/heads/latest")
    head = latest_head(context.ledger)
    return Response(
        json.dumps(head.model_dump(mode="json"), indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="head-{head.tree_size}.json"'},
    )


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
