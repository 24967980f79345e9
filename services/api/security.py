"""Who is acting: the person behind the request's bearer token.

Every route takes the actor from ``CurrentActor``, never from the request body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.dependencies import get_context
from services.api.observability import ARRIVED_KEY
from services.api.routes import run_blocking

bearer_scheme = HTTPBearer(auto_error=False, description="An API token from `salesledger token`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]

ACTOR_KEY = "salesledger.actor"
"""Where in the request's scope the access check leaves the actor it authenticated."""


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    """The person id of the token's owner; 401 if the token is missing, unknown or revoked.
    Blocking: the organisation is brought up to date first (a token revoked through
    another process is refused at once)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send an API token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    person_id = get_context(request).ledger.authenticate(
        credentials.credentials, since=request.scope.get(ARRIVED_KEY)
    )
    if person_id is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the API token is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.scope[ACTOR_KEY] = person_id
    return person_id


async def current_actor(request: Request) -> str:
    """The actor. Every router's access check (``services.api.policy``) authenticates
    first, in the worker thread of the rest of its check, and this reads what it found:
    a thread hand-over less per request (each costs the event loop about as much as a
    short query). It takes no dependency of its own (the check's declares the bearer
    scheme), as FastAPI resolves a dependency's own dependencies again wherever it is
    used, cached or not. A route outside the check authenticates here, in a thread."""
    actor: str | None = request.scope.get(ACTOR_KEY)
    if actor is not None:
        return actor
    return await run_blocking(authenticate, request, await bearer_scheme(request))


CurrentActor = Annotated[str, Depends(current_actor)]
