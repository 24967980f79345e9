"""The checked-in JSON Schemas agree with the event classes and the encoded messages."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import jsonschema

from events.messages import encode_event
from events.opportunity import OpportunityLost, OpportunityOpened
from schemas.generate import (
    EVENT_SCHEMAS_DIR,
    disagreements,
    event_classes,
    event_schema,
    render,
    schema_file_name,
)


def test_every_checked_in_schema_matches_its_event_class() -> None:
    assert disagreements() == [], "run `python -m schemas.generate` and commit the result"


def test_every_published_event_class_has_a_schema() -> None:
    names = {path.name for path in EVENT_SCHEMAS_DIR.glob("*.json")}
    expected = [schema_file_name(cls) for cls in event_classes()]
    missing = [name for name in expected if name not in names]
    assert missing == []


def test_a_changed_event_definition_is_detected(tmp_path: Path) -> None:
    for cls in event_classes():
        (tmp_path / schema_file_name(cls)).write_text(render(event_schema(cls)))
    target = tmp_path / schema_file_name(OpportunityLost)
    schema = json.loads(target.read_text())
    del schema["properties"]["competitor"]
    target.write_text(render(schema))
    assert disagreements(tmp_path) == [f"{target.name}: differs from its event class"]


def test_a_schema_for_an_unknown_event_is_detected(tmp_path: Path) -> None:
    for cls in event_classes():
        (tmp_path / schema_file_name(cls)).write_text(render(event_schema(cls)))
    (tmp_path / "opportunity.Vanished.v1.json").write_text("{}")
    assert disagreements(tmp_path) == ["opportunity.Vanished.v1.json: no such event class"]


def test_schemas_describe_every_field_and_nothing_else() -> None:
    schema = event_schema(OpportunityOpened)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["amount"]["type"] == "string"
    assert schema["properties"]["expected_close"] == {"type": "string", "format": "date"}
    assert "originator_topic" not in schema["properties"]
    assert schema["x-cloudevents-type"] == "salesledger.opportunity.OpportunityOpened.v1"


def test_encoded_messages_validate_against_their_schema() -> None:
    events: list[Any] = [
        cast(Any, OpportunityOpened)(
            originator_id=uuid4(),
            originator_version=1,
            timestamp=datetime.now(UTC),
            originator_topic="aggregates.opportunity:Opportunity",
            actor="rep",
            customer_id="c",
            owner_id="rep",
            title="t",
            source="web",
            amount=Decimal("1E+3"),
            expected_close=date(2025, 1, 1),
            product="p",
            region="r",
        ),
        cast(Any, OpportunityLost)(
            originator_id=uuid4(),
            originator_version=5,
            timestamp=datetime.now(UTC),
            actor="rep",
            reason="price",
            competitor=None,
            closed_on=date(2025, 2, 1),
        ),
    ]
    for event in events:
        schema = json.loads((EVENT_SCHEMAS_DIR / schema_file_name(type(event))).read_text())
        value = json.loads(encode_event(event, 1, topic_prefix="sales").value)
        jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
