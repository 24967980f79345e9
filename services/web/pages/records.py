"""Record pages of a deal and a customer: fields, team, evaluation, the timeline of every
event with its chain status, and an as-of control showing the record as it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Request, Response

from aggregates.customer import Customer
from aggregates.evaluation import EVALUATION_GROUPS, group_scores
from aggregates.opportunity import Opportunity
from commands.ledger import SalesLedger
from projections.field_history import FieldHistory, FlagThresholds
from services.analytics.queries import field_history
from services.history import history_with_chain
from services.web import queries
from services.web.deps import ViewerDep, WebContextDep
from services.web.guard import PageError, authorize
from services.web.rendering import PageRoute, render
from services.web.session import Viewer

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

HIDDEN_FIELDS = {"team", "bid_details"}


def parse_moment(text: str | None) -> datetime | None:
    """An as-of moment from the page's control (a local ``datetime-local`` value is UTC)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PageError(422, f"as_of: not a date and time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def record_state(
    ledger: SalesLedger, kind: type[Aggregate], record_id: str, as_of: datetime | None
) -> Aggregate:
    if as_of is None:
        return ledger.read(kind, record_id)
    return ledger.load_as_of(kind, record_id, as_of)


def fields_of(record: Aggregate) -> list[tuple[str, Any]]:
    return [
        (name.replace("_", " "), value)
        for name, value in vars(record).items()
        if not name.startswith("_") and name not in HIDDEN_FIELDS
    ]


def timeline(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History entries for display: the reason apart, the other changes as short text."""
    rows = []
    for entry in reversed(entries):
        changes = dict(entry["changes"])
        reason = changes.pop("reason", None)
        rows.append(
            {
                **entry,
                "reason": reason,
                "summary": ", ".join(
                    f"{k}={json.dumps(v, default=str)}" for k, v in changes.items()
                )[:400],
            }
        )
    return rows


def evaluation_of(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest evaluation's answers by group, with the points of each."""
    evaluated = [e for e in entries if e["event_type"] == "OpportunityEvaluated"]
    if not evaluated:
        return None
    answers: dict[str, bool] = evaluated[-1]["changes"]["answers"]
    scores = group_scores(answers)
    return {
        "score": evaluated[-1]["changes"]["score"],
        "high_value": evaluated[-1]["changes"]["high_value"],
        "groups": [
            {
                "name": group.replace("_", " "),
                "points": scores[group],
                "answers": [(q.replace("_", " "), bool(answers.get(q))) for q in questions],
            }
            for group, questions in EVALUATION_GROUPS.items()
        ],
    }


def changes_of(
    ledger: SalesLedger, viewer: Viewer, record_id: str, moment: datetime | None
) -> tuple[FieldHistory, list[Any]]:
    """The record's field history as the API's ``GET /aggregates/{id}/field-history``
    gives it (same policy, same function, default flag thresholds), newest first; with an
    as-of moment, only the changes made by then."""
    authorize(
        ledger, viewer, "GET /aggregates/{aggregate_id}/field-history", {"aggregate_id": record_id}
    )
    history = field_history(ledger, record_id, None, FlagThresholds())
    changes = [c for c in history.changes if moment is None or c.at <= moment]
    return history, list(reversed(changes))


@router.get("/deals/{opportunity_id}")
def deal_page(
    request: Request,
    opportunity_id: str,
    viewer: ViewerDep,
    context: WebContextDep,
    as_of: str | None = None,
) -> Response:
    ledger, ids = context.ledger, {"opportunity_id": opportunity_id}
    authorize(ledger, viewer, "GET /opportunities/{opportunity_id}", ids)
    authorize(ledger, viewer, "GET /opportunities/{opportunity_id}/history", ids, {"as_of": as_of})
    moment = parse_moment(as_of)
    deal = record_state(ledger, Opportunity, opportunity_id, moment)
    entries = history_with_chain(ledger, opportunity_id, as_of=moment)
    history, changes = changes_of(ledger, viewer, opportunity_id, moment)
    return render(
        request,
        "deal.html",
        viewer=viewer,
        page="deal",
        version=queries.data_version(ledger, context.database),
        deal=deal,
        fields=fields_of(deal),
        evaluation=evaluation_of(entries),
        events=timeline(entries),
        field_history=history,
        changes=changes,
        thresholds=FlagThresholds(),
        as_of=as_of or "",
        moment=moment,
    )


@router.get("/deals/{opportunity_id}/history.json")
def deal_history_download(
    opportunity_id: str, viewer: ViewerDep, context: WebContextDep
) -> Response:
    """The deal's history with chain status, as the API's history route gives it."""
    ids = {"opportunity_id": opportunity_id}
    authorize(context.ledger, viewer, "GET /opportunities/{opportunity_id}/history", ids)
    entries = history_with_chain(context.ledger, opportunity_id)
    return Response(
        json.dumps(entries, default=str, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="deal-{opportunity_id}.json"'},
    )


@router.get("/customers/{customer_id}")
def customer_page(
    request: Request,
    customer_id: str,
    viewer: ViewerDep,
    context: WebContextDep,
    as_of: str | None = None,
) -> Response:
    ledger = context.ledger
    authorize(ledger, viewer, "GET /customers/{customer_id}", {"customer_id": customer_id})
    moment = parse_moment(as_of)
    customer = record_state(ledger, Customer, customer_id, moment)
    entries = history_with_chain(ledger, customer_id, as_of=moment)
    history, changes = changes_of(ledger, viewer, customer_id, moment)
    return render(
        request,
        "customer.html",
        viewer=viewer,
        page="customer",
        version=queries.data_version(ledger, context.database),
        customer=customer,
        fields=fields_of(customer),
        deals=queries.deals_of_customer(context.database, customer_id, viewer.visible_owners()),
        events=timeline(entries),
        field_history=history,
        changes=changes,
        as_of=as_of or "",
        moment=moment,
    )
