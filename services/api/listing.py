"""Answering a list request: one page as JSON (with its ``Link`` header), or every row
as streamed CSV; and the time and scope parameters lists share."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, tzinfo
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from aggregates.visibility import visible_people
from services.api.csv_export import csv_response, every_page, wants_csv
from services.api.dependencies import ApiContext
from services.api.pagination import decode_cursor, encode_cursor, paged
from services.moments import Bound, parse_moment, time_zone

Fetch = Callable[[Any, int], tuple[list[BaseModel], Any]]
"""(cursor state, how many) → the items, and the state after them (None: no more)."""


def list_response(
    request: Request,
    response: Response,
    context: ApiContext,
    actor: str,
    *,
    name: str,
    sort: str,
    cursor: str | None,
    limit: int,
    format: str | None,
    item: type[BaseModel],
    fetch: Fetch,
) -> Any:
    """A page of ``fetch`` as JSON, or (CSV asked for) all of it from the cursor on."""
    state = decode_cursor(cursor, name, sort)
    if wants_csv(request, format):
        columns = list(item.model_fields)
        return csv_response(context.ledger, actor, request, columns, every_page(fetch, state))
    items, after = fetch(state, limit)
    next_cursor = encode_cursor(name, sort, after) if after is not None else None
    return paged(request, response, items, next_cursor)


def zone_of(context: ApiContext) -> tzinfo:
    """The organisation's time zone (``LEDGER_TIME_ZONE``)."""
    return time_zone(context.settings.time_zone)


def moment_param(
    context: ApiContext, value: str | None, name: str, bound: Bound = Bound.END
) -> datetime | None:
    """A time parameter by the rule of ``services.moments``; None if not given."""
    if value is None:
        return None
    return parse_moment(value, name, zone_of(context), bound)


def day_param(context: ApiContext, value: str | None, name: str, bound: Bound) -> date | None:
    """A date parameter: a date, or the day (in the organisation's zone) of a time."""
    moment = moment_param(context, value, name, bound)
    return None if moment is None else moment.astimezone(zone_of(context)).date()


def person_param(value: str | None, actor: str) -> str | None:
    """A person id, ``me`` standing for the caller."""
    return actor if value == "me" else value


def visible_to(context: ApiContext, actor: str) -> set[str] | None:
    return visible_people(actor, context.ledger.organisation(fresh=False))
