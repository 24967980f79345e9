"""The AsyncAPI document and the served schemas agree with the code and with the messages
the relay sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from fastapi import FastAPI
from fastapi.testclient import TestClient

from events.messages import encode_event
from schemas import asyncapi
from schemas.generate import event_classes
from services.api import schemas as served
from tests.unit.test_messages import opened

ROOT = Path(__file__).resolve().parents[2]


def validator() -> Any:
    schema = json.loads((ROOT / "tests" / "asyncapi" / "asyncapi-3.0.0.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert asyncapi.main(["--check"]) == 0


def test_the_document_is_valid_asyncapi_3() -> None:
    document = asyncapi.document()
    errors = [f"{list(e.path)}: {e.message}" for e in validator().iter_errors(document)]
    assert not errors
    document["operations"]["publish_customer"]["action"] = "publish"  # AsyncAPI 2's word
    assert not validator().is_valid(document)


def test_every_event_class_has_a_message_with_its_payload_schema() -> None:
    document = asyncapi.document()
    messages = document["components"]["messages"]
    assert len(messages) == len(list(event_classes()))
    for message in messages.values():
        payload = json.loads((ROOT / "schemas" / message["payload"]["$ref"]).read_text())
        assert payload["$id"] == message["x-dataschema"]
        assert payload["x-cloudevents-type"] == message["name"]


def test_a_message_names_its_served_schema_in_ce_dataschema() -> None:
    message = encode_event(opened(), 7, topic_prefix="sales")
    headers = {name: value.decode() for name, value in message.headers}
    header_schema = asyncapi.headers_schema()
    jsonschema.validate(headers, header_schema)
    app = FastAPI()
    app.include_router(served.router)
    client = TestClient(app)
    listed = {link["id"]: link["url"] for link in client.get("/schemas").json()}
    response = client.get(listed[headers["ce_dataschema"]])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    assert response.json()["$id"] == headers["ce_dataschema"]
    assert client.get("/schemas/asyncapi").json()["asyncapi"] == "3.0.0"
    assert client.get("/schemas/salesledger.nothing.Nothing.v1").status_code == 404
