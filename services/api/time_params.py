"""The time parameters of queries (``as_of``, ``since``, ``until``), read by the rule of
``services.moments``: a date, a local time (in the organisation's time zone) or a time
with an offset; anything else → 422 naming the parameter. Parsing does no I/O, so the
parameters are ``async`` dependencies (resolved on the event loop, not in a thread), and
take the request itself, which FastAPI hands over without a dependency of its own to
resolve."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from services.api.dependencies import get_context
from services.api.listing import moment_param
from services.moments import MOMENT_FORMATS, Bound

_DESCRIPTION = (
    f"{MOMENT_FORMATS}. A date alone as `as_of` or a range's end means the end of that "
    "day, as a range's start its beginning."
)


async def as_of_param(
    request: Request,
    as_of: Annotated[
        str | None,
        Query(
            max_length=40,
            description=f"As it was at this moment: {_DESCRIPTION}",
            examples=["2026-12-05", "2026-12-05T18:00", "2026-12-05T10:00:00Z"],
        ),
    ] = None,
) -> datetime | None:
    return moment_param(get_context(request), as_of, "as_of", Bound.END)


async def since_param(
    request: Request,
    since: Annotated[
        str | None,
        Query(max_length=40, description=f"From this moment on: {_DESCRIPTION}"),
    ] = None,
) -> datetime | None:
    return moment_param(get_context(request), since, "since", Bound.START)


async def until_param(
    request: Request,
    until: Annotated[
        str | None,
        Query(max_length=40, description=f"Up to this moment: {_DESCRIPTION}"),
    ] = None,
) -> datetime | None:
    return moment_param(get_context(request), until, "until", Bound.END)


AsOf = Annotated[datetime | None, Depends(as_of_param)]
Since = Annotated[datetime | None, Depends(since_param)]
Until = Annotated[datetime | None, Depends(until_param)]
