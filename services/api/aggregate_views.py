"""Any single aggregate as JSON, as it is now or as it was at a past moment."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate
from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from commands.ledger import SalesLedger
from services.api.conventions import etag


class AggregateState(BaseModel):
    """An aggregate's state, reconstructed from its events (up to ``as_of`` if given).
    Amounts are decimal strings; ``version`` is also the response's ``ETag``."""

    aggregate_id: str = Field(examples=["5b0c6c1e-54f8-4f57-9e4f-7a0d2f1b8c11"])
    aggregate_type: str = Field(examples=["Opportunity"])
    version: int = Field(examples=[7])
    as_of: datetime | None = None
    state: dict[str, Any] = Field(examples=[{"stage": 3, "status": "open", "owner_id": "alice"}])


CHECKED_RECORDS_KEY = "salesledger.checked_records"
"""Where in the request's scope the access check leaves the records it read, by id
(``services.access.check_route``): read for this request, after it arrived."""


def checked_record(request: Request, aggregate_id: str) -> Aggregate | None:
    """The record the access check read for this request, if it read ``aggregate_id``."""
    records: dict[str, Aggregate] = request.scope.get(CHECKED_RECORDS_KEY) or {}
    return records.get(aggregate_id)


def aggregate_state(
    ledger: SalesLedger,
    aggregate_class: type[Aggregate],
    aggregate_id: str,
    as_of: datetime | None = None,
    checked: Aggregate | None = None,
) -> AggregateState:
    """Load and describe an aggregate; NotFoundError if it does not exist (then).
    ``checked``: the aggregate as the request's access check read it (not read again)."""
    if as_of is None and isinstance(checked, aggregate_class):
        aggregate = checked
    elif as_of is None:
        aggregate = ledger.read(aggregate_class, aggregate_id)
    else:
        aggregate = ledger.load_as_of(aggregate_class, aggregate_id, as_of)
    state = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    return AggregateState(
        aggregate_id=str(aggregate.id),
        aggregate_type=type(aggregate).__name__,
        version=aggregate.version,
        as_of=as_of,
        state=jsonable_encoder(state, custom_encoder={Decimal: str}),
    )


def with_etag(response: Response, state: AggregateState) -> AggregateState:
    """``state`` with its version as the response's ``ETag`` (for ``If-Match``)."""
    response.headers["ETag"] = etag(state.version)
    return state
