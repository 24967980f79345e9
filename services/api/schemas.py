"""The contracts consumers need, served: every event's JSON Schema (by its CloudEvents
type, which ``ce_dataschema`` names) and the AsyncAPI document of the topics."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import schemas
from events.messages import schema_id
from services.api.routes import LedgerRouter

router = LedgerRouter(prefix="/schemas", tags=["schemas"])
SCHEMAS_DIR = Path(schemas.__file__).parent
SCHEMA_MEDIA_TYPE = "application/schema+json"


class SchemaLink(BaseModel):
    type: str
    """The CloudEvents type, e.g. ``salesledger.customer.CustomerRegistered.v1``."""
    id: str
    """The schema's ``$id``, as in each message's ``ce_dataschema`` header."""
    url: str


@cache
def _event_schemas() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((SCHEMAS_DIR / "events").glob("*.json")):
        schema = json.loads(path.read_text())
        found[schema["x-cloudevents-type"]] = schema
    return found


@router.get("", response_model=list[SchemaLink])
def list_schemas() -> list[SchemaLink]:
    """Every published event type's JSON Schema, by CloudEvents type."""
    return [
        SchemaLink(type=ce_type, id=schema_id(ce_type), url=f"/schemas/{ce_type}")
        for ce_type in _event_schemas()
    ]


@router.get("/asyncapi", response_class=JSONResponse)
def asyncapi() -> JSONResponse:
    """The AsyncAPI 3.0 document of the Kafka topics."""
    return JSONResponse(json.loads((SCHEMAS_DIR / "asyncapi.json").read_text()))


@router.get(
    "/{ce_type}",
    response_class=JSONResponse,
    responses={404: {"description": "no event type of that name"}},
)
def event_schema(ce_type: str) -> JSONResponse:
    """The JSON Schema of one event type's message value."""
    schema = _event_schemas().get(ce_type)
    if schema is None:
        raise HTTPException(404, detail=f"no event type {ce_type!r}; see GET /schemas")
    return JSONResponse(schema, media_type=SCHEMA_MEDIA_TYPE)
