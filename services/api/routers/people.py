"""People and reporting lines of the organisation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from commands.models import AddPerson, ChangeManager, ChangeRole, CommandAccepted, RemovePerson
from services.api.dependencies import ContextDep, IdempotencyKey, LedgerDep, accepted
from services.api.security import CurrentActor

router = APIRouter(prefix="/people", tags=["people"])


class PersonView(BaseModel):
    """A person of the organisation."""

    person_id: str = Field(examples=["alice"])
    name: str = Field(examples=["Alice Chen"])
    role: str = Field(examples=["sales_rep"])
    manager_id: str | None = Field(examples=["bob"])
    active: bool = Field(examples=[True])


class PeoplePage(BaseModel):
    """A page of people, ordered by id."""

    items: list[PersonView]
    total: int
    next_offset: int | None


@router.get("", response_model=PeoplePage)
def list_people(
    ledger: LedgerDep,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    include_inactive: bool = False,
) -> PeoplePage:
    """List the organisation's people."""
    people = sorted(ledger.organisation().people.values(), key=lambda p: p.person_id)
    if not include_inactive:
        people = [p for p in people if p.active]
    page = people[offset : offset + limit]
    return PeoplePage(
        items=[
            PersonView(
                person_id=p.person_id,
                name=p.name,
                role=p.role.value,
                manager_id=p.manager_id,
                active=p.active,
            )
            for p in page
        ],
        total=len(people),
        next_offset=offset + limit if offset + limit < len(people) else None,
    )


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
