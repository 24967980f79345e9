"""Browser sessions: a bearer token exchanged for an HttpOnly cookie, and CSRF tokens.

A session is an ordinary API token issued for the person at sign-in and revoked at
sign-out, so a session is authenticated exactly as an API request is (``authenticate``)
and every sign-in and sign-out is an event of the organisation. A sign-in link carries a
token that works once: using it revokes it and issues the session's own token. The CSRF
token of a session is derived from the session token, so any API process can check it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from aggregates.organisation import SYSTEM_ACTOR, Organisation, Person, Role
from aggregates.visibility import visible_people
from commands.ledger import SalesLedger

SESSION_COOKIE = "salesledger_session"
PRE_SESSION_COOKIE = "salesledger_signin"
SESSION_MAX_AGE_SECONDS = 12 * 3600
SIGNED_OUT_REASON = "signed out of the dashboard"
LINK_USED_REASON = "one-time sign-in link used"


class SignInError(Exception):
    """The token or link does not sign anyone in (unknown, revoked, used or departed)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, as the policy sees them."""

    person: Person
    token: str
    org: Organisation

    @property
    def person_id(self) -> str:
        return self.person.person_id

    @property
    def csrf_token(self) -> str:
        return csrf_for(self.token)

    @property
    def sees_everything(self) -> bool:
        return self.org.has_role(self.person_id, Role.AUDITOR, Role.ADMIN)

    @property
    def sells(self) -> bool:
        """Owns deals: a sales rep or a manager."""
        return self.org.has_role(self.person_id, Role.SALES_REP, Role.MANAGER)

    @property
    def oversees(self) -> bool:
        """Reviews others' pipelines: a manager, an auditor or an admin."""
        return self.org.has_role(self.person_id, Role.MANAGER, Role.AUDITOR, Role.ADMIN)

    def visible_owners(self) -> set[str] | None:
        """Whose deals this viewer may see on lists: None for everyone, else the subtree
        (``aggregates.visibility``, the rule the API applies)."""
        return visible_people(self.person_id, self.org)


def token_id_of(token: str) -> str:
    """The id under which ``SalesLedger.issue_token`` recorded ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"salesledger-csrf", hashlib.sha256).hexdigest()[:32]


def csrf_matches(secret: str, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(csrf_for(secret), submitted)


def current_viewer(request: Request, ledger: SalesLedger) -> Viewer | None:
    """The person behind the request's session cookie, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    person_id = ledger.authenticate(token)
    if person_id is None:
        return None
    org = ledger.organisation(fresh=False)
    return Viewer(person=org.people[person_id], token=token, org=org)


def start_session(ledger: SalesLedger, token: str, *, one_time: bool) -> str:
    """A new session token for the owner of ``token``; ``one_time`` revokes ``token``."""
    person_id = ledger.authenticate(token)
    if person_id is None:
        raise SignInError("this token or sign-in link is unknown, revoked or already used")
    if one_time:
        ledger.revoke_token(token_id_of(token), LINK_USED_REASON, actor=SYSTEM_ACTOR)
    _, session = ledger.issue_token(person_id, actor=SYSTEM_ACTOR)
    return session


def end_session(ledger: SalesLedger, viewer: Viewer) -> None:
    ledger.revoke_token(token_id_of(viewer.token), SIGNED_OUT_REASON, actor=SYSTEM_ACTOR)


def issue_sign_in_link(ledger: SalesLedger, person_id: str, base_url: str) -> str:
    """A one-time sign-in link for ``person_id`` (the CLI prints it)."""
    _, token = ledger.issue_token(person_id, actor=SYSTEM_ACTOR)
    return f"{base_url.rstrip('/')}/web/signin/link?code={token}"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(PRE_SESSION_COOKIE, path="/web/signin")


def pre_session_secret(request: Request, response: Response | None = None) -> str:
    """The sign-in forms' CSRF secret (a double-submit cookie), made on first sight."""
    secret = request.cookies.get(PRE_SESSION_COOKIE)
    if not secret:
        secret = secrets.token_urlsafe(24)
    if response is not None:
        response.set_cookie(
            PRE_SESSION_COOKIE,
            secret,
            max_age=3600,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/web/signin",
        )
    return secret
