"""API tokens: an admin issues and revokes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from commands.models import CommandAccepted
from services.api.dependencies import ContextDep, IdempotencyKey, accepted
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor

router = LedgerRouter(prefix="/tokens", tags=["tokens"])


class IssueToken(BaseModel):
    """Whom the new token is for."""

    person_id: str = Field(min_length=1, examples=["alice"])


class IssuedToken(BaseModel):
    """A new bearer token; it is shown this once and stored only as a digest."""

    token_id: str = Field(examples=["3f2a9c0d1e4b5a67"])
    person_id: str = Field(examples=["alice"])
    token: str = Field(examples=["sl_Jx…"])


@router.post("", response_model=IssuedToken, status_code=201)
def issue_token(
    body: IssueToken, context: ContextDep, actor: CurrentActor, command_id: IdempotencyKey = None
) -> IssuedToken:
    """Issue a bearer token for a person (admins only); it expires after
    `LEDGER_TOKEN_TTL_DAYS` (90). A repeat with the same Idempotency-Key answers 409:
    the token is shown once and never stored."""
    token_id, token = context.ledger.issue_token(body.person_id, actor=actor, command_id=command_id)
    return IssuedToken(token_id=token_id, person_id=body.person_id, token=token)


@router.post("/{token_id}/rotation", response_model=IssuedToken, status_code=201)
def rotate_token(
    token_id: str, context: ContextDep, actor: CurrentActor, command_id: IdempotencyKey = None
) -> IssuedToken:
    """Replace a token by a new one for the same person; the old one stops at once."""
    new_id, token = context.ledger.rotate_token(token_id, actor=actor, command_id=command_id)
    person_id = context.ledger.organisation().tokens[new_id][0]
    return IssuedToken(token_id=new_id, person_id=person_id, token=token)


@router.delete("/{token_id}", response_model=CommandAccepted)
def revoke_token(
    token_id: str,
    context: ContextDep,
    actor: CurrentActor,
    reason: Annotated[str, Query(min_length=1, max_length=500)] = "revoked by an admin",
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Revoke a token at once (admins only)."""
    result = context.ledger.revoke_token(token_id, reason, actor=actor, command_id=command_id)
    return accepted(result, context)
