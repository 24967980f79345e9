"""Who is acting: the person behind the request's bearer token.

Every route takes the actor from ``CurrentActor``, never from the request body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.dependencies import get_context

bearer_scheme = HTTPBearer(auto_error=False, description="An API token from `salesledger token`.")


def current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The person id of the token's owner; 401 if the token is missing, unknown or revoked.
    (The ledger is taken from the request, not from a dependency: every dependency costs
    FastAPI's resolution on every request, and this one runs on all of them.)"""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send an API token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    person_id = get_context(request).ledger.authenticate(credentials.credentials)
    if person_id is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the API token is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return person_id


CurrentActor = Annotated[str, Depends(current_actor)]
