"""Who is acting: the person behind the request's bearer token.

Every route takes the actor from ``CurrentActor``, never from the request body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.dependencies import LedgerDep

bearer_scheme = HTTPBearer(auto_error=False, description="An API token from `salesledger token`.")


def current_actor(
    ledger: LedgerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The person id of the token's owner; 401 if the token is missing, unknown or revoked."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send an API token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    person_id = ledger.authenticate(credentials.credentials)
    if person_id is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the API token is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return person_id


CurrentActor = Annotated[str, Depends(current_actor)]
