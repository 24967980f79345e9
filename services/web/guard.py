"""Pages obey the API's access policy: each page names the API route whose data it shows.

``authorize`` asks ``services.access.check_route`` exactly as the API's router dependency
does, so a page shows a record or a list only to those the API would serve it to, with
the same refusal whether or not the record exists. Bulk reads the policy records as
exports are recorded too, once per person, day, read and parameters (a live refresh of
the same view reads nothing new that was not already recorded as asked for).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aggregates.audit_log import AuditLog, audit_log_id
from aggregates.errors import NotFoundError
from commands.ledger import SalesLedger
from services.access import NOT_ALLOWED_MESSAGE, AccessDeniedError, check_route
from services.exports import record_export
from services.web.session import Viewer


class PageError(Exception):
    """A page that cannot be shown: rendered as an HTML error page with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def authorize(
    ledger: SalesLedger,
    viewer: Viewer,
    api_route: str,
    path_params: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
) -> None:
    """Allow ``viewer`` what the policy allows on ``api_route`` ("GET /funnel"), or 403/404."""
    method, path = api_route.split(" ", 1)
    params = path_params or {}
    try:
        rule = check_route(method, path, params, viewer.person_id, ledger)
    except AccessDeniedError:
        raise PageError(403, NOT_ALLOWED_MESSAGE) from None
    except NotFoundError as error:
        raise PageError(404, str(error)) from None
    if rule.recorded:
        parameters = {
            **{k: str(v) for k, v in params.items()},
            **{k: str(v) for k, v in (query or {}).items() if v is not None},
        }
        if not _already_recorded(ledger, viewer.person_id, api_route, parameters):
            record_export(ledger, viewer.person_id, api_route, parameters)


def _already_recorded(
    ledger: SalesLedger, person_id: str, what: str, parameters: dict[str, Any]
) -> bool:
    try:
        log = ledger.read(AuditLog, audit_log_id(person_id, datetime.now(UTC).date()))
    except NotFoundError:
        return False
    return (what, parameters) in log.exports
