"""People and reporting lines of the organisation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import BaseModel, Field

from aggregates.organisation import Role
from aggregates.visibility import require_visible_people
from commands.models import (
    AddPerson,
    ChangeManager,
    ChangeRole,
    CommandAccepted,
    ReassignHoldings,
    RemovePerson,
)
from projections.runner import wait_for_position
from services.api.csv_export import Format
from services.api.dependencies import (
    READ_YOUR_WRITES_TIMEOUT_SECONDS,
    ApiContext,
    ContextDep,
    IdempotencyKey,
    accepted,
)
from services.api.errors import InvalidParameterError
from services.api.listing import list_response
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.holdings import Holdings, holdings_of

router = LedgerRouter(prefix="/people", tags=["people"])


class PersonView(BaseModel):
    """A person of the organisation."""

    person_id: str = Field(examples=["alice"])
    name: str = Field(examples=["Alice Chen"])
    role: str = Field(examples=["sales_rep"])
    manager_id: str | None = Field(examples=["bob"])
    active: bool = Field(examples=[True])


@router.get("", response_model=Page[PersonView])
def list_people(
    request: Request,
    response: Response,
    context: ContextDep,
    actor: CurrentActor,
    role: Role | None = None,
    manager: Annotated[
        str | None, Query(min_length=1, max_length=100, description="direct reports of")
    ] = None,
    include_inactive: bool = False,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """The organisation's people, ordered by id."""
    people = sorted(context.ledger.organisation().people.values(), key=lambda p: p.person_id)
    people = [
        p
        for p in people
        if (include_inactive or p.active)
        and (role is None or p.role == role)
        and (manager is None or p.manager_id == manager)
    ]

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        after = "" if state is None else str(state)
        page = [p for p in people if p.person_id > after][: limit + 1]
        items = [
            PersonView(
                person_id=p.person_id,
                name=p.name,
                role=p.role.value,
                manager_id=p.manager_id,
                active=p.active,
            )
            for p in page[:limit]
        ]
        return items, items[-1].person_id if len(page) > limit else None

    if cursor is not None and not isinstance(decode_cursor(cursor, "people", "person_id"), str):
        raise InvalidParameterError("cursor", "not a cursor this API issued")
    return list_response(
        request, response, context, actor, name="people", sort="person_id", cursor=cursor,
        limit=limit, format=format, item=PersonView, fetch=fetch,
    )  # fmt: skip


@router.post("", response_model=CommandAccepted, status_code=201)
def add_person(
    body: AddPerson, context: ContextDep, actor: CurrentActor, command_id: IdempotencyKey = None
) -> CommandAccepted:
    """Add a person with a role and (optionally) a manager."""
    result = context.ledger.add_person(
        body.person_id, body.name, body.role, body.manager_id, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{person_id}/role", response_model=CommandAccepted)
def change_role(
    person_id: str,
    body: ChangeRole,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Change a person's role."""
    result = context.ledger.change_role(
        person_id, body.role, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{person_id}/manager", response_model=CommandAccepted)
def change_manager(
    person_id: str,
    body: ChangeManager,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Change whom a person reports to."""
    result = context.ledger.change_manager(
        person_id, body.manager_id, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{person_id}/departure", response_model=CommandAccepted)
def remove_person(
    person_id: str,
    body: RemovePerson,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Record that a person left; with a successor, their open deals and customers pass to
    them in the same command (one event each, with the reason)."""
    if body.successor_id is None:
        result = context.ledger.remove_person(
            person_id, body.reason, actor=actor, command_id=command_id
        )
        return accepted(result, context)
    holdings = _current_holdings(context, person_id)
    result = context.ledger.transfer_holdings(
        person_id,
        body.successor_id,
        holdings.deal_ids,
        holdings.customer_ids,
        body.reason,
        departure=True,
        actor=actor,
        command_id=command_id,
    )
    return accepted(result, context)


@router.post("/{person_id}/reassignment", response_model=CommandAccepted)
def reassign_holdings(
    person_id: str,
    body: ReassignHoldings,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Move all of a person's open deals and customers to a successor in one command (a
    manager above both, or an admin)."""
    require_visible_people(actor, {person_id}, context.ledger.organisation())
    holdings = _current_holdings(context, person_id)
    result = context.ledger.transfer_holdings(
        person_id,
        body.successor_id,
        holdings.deal_ids,
        holdings.customer_ids,
        body.reason,
        actor=actor,
        command_id=command_id,
    )
    return accepted(result, context)


def _current_holdings(context: ApiContext, person_id: str) -> Holdings:
    """The person's holdings once monitoring has applied everything recorded so far."""
    on_wait: Any = context.worker.wake if context.worker is not None else None
    wait_for_position(
        context.database,
        "monitoring",
        context.ledger.store.max_committed_notification_id(),
        READ_YOUR_WRITES_TIMEOUT_SECONDS,
        on_wait=on_wait,
    )
    return holdings_of(context.database, person_id)
