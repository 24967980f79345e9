"""Query filters shared by the read endpoints, parsed from query parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from aggregates.configuration import Configuration
from aggregates.errors import InvalidFieldError, NotFoundError
from aggregates.organisation import ORGANISATION_ID, Organisation
from aggregates.plan import period_bounds
from aggregates.visibility import require_visible_people, visible_people
from commands.ledger import SalesLedger
from events.limits import MAX_LONG_TEXT_LENGTH, EventFieldError, check_text
from projections.funnel import FunnelFilter
from services.api.dependencies import get_context
from services.api.security import CurrentActor


def check_parameters(request: Request) -> None:
    """Refuse path and query parameters that no store can look up (a NUL, another
    control character, a lone surrogate; ``events.limits``): 422 naming the parameter."""
    named = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in named:
        if isinstance(value, str):
            try:
                check_text(name, value, MAX_LONG_TEXT_LENGTH)
            except EventFieldError as error:
                raise InvalidFieldError(error.field, error.problem) from None


def owners_in_scope(
    ledger: SalesLedger,
    actor: str,
    owner: str | None,
    team: str | None,
    *,
    own_scope: bool = False,
) -> set[str] | None:
    """The owners to count: one person, a manager's whole subtree, both (intersected) or
    all. Naming a person the actor may not see is refused like an unseen record (403);
    with ``own_scope`` and no person named, the people the actor sees (``None``: all).
    ``me`` names the actor, as in the lists."""
    owner, team = (actor if p == "me" else p for p in (owner, team))
    org = ledger.organisation(fresh=False)  # authenticate has just refreshed it
    require_visible_people(actor, {p for p in (owner, team) if p is not None}, org)
    owners: set[str] | None = None
    if team is not None:
        owners = org.subtree(team)
    if owner is not None:
        owners = {owner} if owners is None else owners & {owner}
    if owners is None and own_scope:
        owners = visible_people(actor, org)
    return owners


async def funnel_filter(
    request: Request,
    actor: CurrentActor,
    owner: Annotated[
        str | None, Query(description="primary owner's person id (`me`: yourself)")
    ] = None,
    team: Annotated[
        str | None,
        Query(description="a manager (`me`: yourself): counts the whole subtree under them"),
    ] = None,
    region: str | None = None,
    product: str | None = None,
    source: Annotated[str | None, Query(description="lead source, e.g. referral")] = None,
    close_period: Annotated[
        str | None,
        Query(
            description="expected-close period (won deals: closing date): 2026, 2026-Q2, "
            "2026-05, 2026-W20 or 2026-05-14",
            examples=["2026-Q2"],
        ),
    ] = None,
) -> FunnelFilter:
    """The funnel's selection (``async``: it does no I/O, see ``services.api.dependencies``)."""
    bounds = period_bounds(close_period) if close_period is not None else (None, None)
    return FunnelFilter(
        owner_ids=owners_in_scope(get_context(request).ledger, actor, owner, team),
        region=region,
        product=product,
        source=source,
        close_from=bounds[0],
        close_to=bounds[1],
    )


FunnelFilterDep = Annotated[FunnelFilter, Depends(funnel_filter)]


def configuration_in_force(ledger: SalesLedger, moment: datetime | None = None) -> Configuration:
    """The organisation's configuration now, or as it was at ``moment`` (so a report of
    the past is weighted with the probabilities in force then: a change never rewrites
    history)."""
    organisation = ledger.organisation(fresh=False)
    if moment is None:
        return organisation.configuration
    try:
        return ledger.load_as_of(Organisation, ORGANISATION_ID, moment).configuration
    except NotFoundError:
        return Configuration()
