"""The organisation's configuration: read by every member, changed by admins with a reason."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from commands.models import CommandAccepted, Configure
from services.api.dependencies import ContextDep, IdempotencyKey, LedgerDep, accepted
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor

router = LedgerRouter(prefix="/organisation", tags=["organisation"])


@router.get("/configuration", response_model=dict[str, Any])
def get_configuration(ledger: LedgerDep, actor: CurrentActor) -> dict[str, Any]:
    """The settings in force: stage probabilities, stale days, sources, products, regions,
    time zone, country code and the date window."""
    return asdict(ledger.organisation().configuration)


@router.post("/configuration", response_model=CommandAccepted)
def configure(
    body: Configure, context: ContextDep, actor: CurrentActor, command_id: IdempotencyKey = None
) -> CommandAccepted:
    """Change settings (admins), recorded with who and why."""
    result = context.ledger.configure(body.changes, body.reason, actor=actor, command_id=command_id)
    return accepted(result, context)
