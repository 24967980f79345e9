"""Monitoring: stale and slipped deals with amounts and owners, activity per person,
ownership transfers — within the viewer's part of the organisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from projections.base import iso_week
from projections.monitoring import (
    query_activity_counts,
    query_ownership_transfers,
    query_slipped_deals,
    query_stale_deals,
)
from services.web import queries
from services.web.deps import ViewerDep, WebContextDep
from services.web.guard import authorize
from services.web.rendering import PageRoute, render

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

ACTIVITY_WEEKS = 8


@router.get("/monitoring")
def monitoring(
    request: Request,
    viewer: ViewerDep,
    context: WebContextDep,
    days: Annotated[int | None, Query(ge=1, le=3650)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    ledger, database = context.ledger, context.database
    days = days or ledger.organisation(fresh=False).configuration.stale_days
    for view in ("stale-deals", "slipped-deals", "activity", "ownership-transfers"):
        authorize(ledger, viewer, f"GET /monitoring/{view}")
    owners = viewer.visible_owners()
    stale = query_stale_deals(database, days=days, owner_ids=owners, limit=100)
    slipped = query_slipped_deals(database, owner_ids=owners, limit=100)
    since = iso_week((datetime.now(UTC) - timedelta(weeks=ACTIVITY_WEEKS)).date())
    activity = query_activity_counts(database, person_ids=owners, from_week=since)
    per_person: dict[str, dict[str, int]] = {}
    for count in activity:
        totals = per_person.setdefault(count.person_id, {})
        for kind, n in count.by_kind.items():
            totals[kind] = totals.get(kind, 0) + n
    transfers = query_ownership_transfers(database, after=after, limit=100)
    if owners is not None:
        items = [t for t in transfers.items if {t.from_owner, t.to_owner, t.actor} & owners]
        transfers = transfers.model_copy(update={"items": items})
    return render(
        request,
        "monitoring.html",
        viewer=viewer,
        page="monitoring",
        version=queries.data_version(ledger, database),
        days=days,
        stale=stale,
        slipped=slipped,
        amounts=queries.amounts_of(
            database, [d.opportunity_id for d in (*stale.items, *slipped.items)]
        ),
        per_person=sorted(per_person.items()),
        kinds=sorted({k for totals in per_person.values() for k in totals}),
        since=since,
        transfers=transfers,
    )
