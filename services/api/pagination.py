"""One pagination for every list: an opaque ``cursor``, a ``limit``, and the next page's
address in an RFC 8288 ``Link: <…>; rel="next"`` header (and as ``next_cursor``).

A cursor is the list's name, its sort and where the last page ended (a keyset, a
position or an offset), base64url-encoded JSON: clients pass it back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request, Response
from pydantic import BaseModel, Field

from services.api.errors import InvalidParameterError

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Cursor = Annotated[
    str | None,
    Query(
        max_length=2000,
        description="Where to continue: the previous page's `next_cursor` (also in its "
        '`Link: <…>; rel="next"` header). Opaque; pass it back unchanged.',
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")]


class Page(BaseModel, Generic[T]):
    """A page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(examples=["eyJsIjoib3Bwb3J0dW5pdGllcyJ9"])


def encode_cursor(list_name: str, sort: str, state: Any) -> str:
    text = json.dumps({"l": list_name, "s": sort, "a": state}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, list_name: str, sort: str) -> Any:
    """The state a cursor of this list and sort carries; None without a cursor;
    InvalidParameterError (422) for anything else."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidParameterError("cursor", "not a cursor this API issued") from None
    if not isinstance(data, dict) or data.get("l") != list_name or "a" not in data:
        raise InvalidParameterError("cursor", f"not a cursor of this list ({list_name})")
    if data.get("s") != sort:
        raise InvalidParameterError("cursor", "the cursor was issued for another sort order")
    return data["a"]


def keyset_of(state: Any) -> tuple[Any, str] | None:
    """A decoded keyset state: [sort value, id]."""
    if state is None:
        return None
    if (
        not isinstance(state, list | tuple)
        or len(state) != 2
        or not isinstance(state[1], str)
        or not isinstance(state[0], str | int)
        or isinstance(state[0], bool)
        or (isinstance(state[0], int) and not -(2**63) <= state[0] < 2**63)
    ):
        raise InvalidParameterError("cursor", "not a cursor this API issued")
    return state[0], state[1]


def int_state(state: Any) -> int:
    """A decoded position or offset state (0 without a cursor)."""
    if state is None:
        return 0
    if not isinstance(state, int) or isinstance(state, bool) or not 0 <= state < 2**63:
        raise InvalidParameterError("cursor", "not a cursor this API issued")
    return state


def next_link(request: Request, cursor: str) -> str:
    """The request's own address with ``cursor`` in place of its cursor."""
    url = request.url.remove_query_params("cursor").include_query_params(cursor=cursor)
    return f'<{url}>; rel="next"'


def paged(request: Request, response: Response, items: list[Any], cursor: str | None) -> Any:
    """The page body; sets the ``Link`` header when there is a next page."""
    if cursor is not None:
        response.headers["Link"] = next_link(request, cursor)
    return {"items": items, "next_cursor": cursor}
