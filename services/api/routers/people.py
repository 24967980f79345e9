"""People and reporting lines of the organisation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from aggregates.organisation import Role
from commands.models import AddPerson, ChangeManager, ChangeRole, CommandAccepted, RemovePerson
from services.api.csv_export import Format
from services.api.dependencies import ContextDep, IdempotencyKey, accepted
from services.api.errors import InvalidParameterError
from services.api.listing import list_response
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor
from services.api.security import CurrentActor

router = APIRouter(prefix="/people", tags=["people"])


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
    """Record that a person left the organisation."""
    result = context.ledger.remove_person(
        person_id, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)
