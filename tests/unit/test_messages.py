"""The wire format: topic naming, JSON value, CloudEvents binary-mode headers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from events.forecast import ForecastSubmitted
from events.messages import (
    MessageFormatError,
    aggregate_type_of,
    decode_message,
    encode_event,
    event_type_name,
    schema_version_of,
    to_json_value,
    topic_name,
)
from events.opportunity import OpportunityOpened, StageAdvanced
from events.organisation import PersonJoined

MOMENT = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def opened(aggregate_id: UUID | None = None) -> OpportunityOpened:
    event_class: Any = OpportunityOpened  # mypy does not see the fields eventsourcing adds
    event: OpportunityOpened = event_class(
        originator_id=aggregate_id or uuid4(),
        originator_version=1,
        timestamp=MOMENT,
        originator_topic="aggregates.opportunity:Opportunity",
        actor="rep",
        customer_id="c-1",
        owner_id="rep",
        title="Servers",
        source="web",
        amount=Decimal("1234.50"),
        expected_close=date(2025, 6, 30),
        product="hardware",
        region="north",
    )
    return event


def headers_of(message_headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in message_headers}


def test_aggregate_type_comes_from_the_event_module() -> None:
    assert aggregate_type_of(StageAdvanced) == "opportunity"
    assert aggregate_type_of(PersonJoined) == "organisation"
    assert aggregate_type_of(ForecastSubmitted) == "forecast"


def test_topic_per_aggregate_type_under_the_prefix() -> None:
    assert topic_name("sales", "opportunity") == "sales.opportunity"
    message = encode_event(opened(), 7, topic_prefix="acme.sales")
    assert message.topic == "acme.sales.opportunity"


def test_event_type_carries_the_schema_version() -> None:
    assert schema_version_of(StageAdvanced) == 1
    assert event_type_name("opportunity", "StageAdvanced", 2) == (
        "salesledger.opportunity.StageAdvanced.v2"
    )


def test_key_is_the_aggregate_id_so_a_deal_stays_in_one_partition() -> None:
    event = opened()
    message = encode_event(event, 7, topic_prefix="sales")
    assert message.key == str(event.originator_id).encode()


def test_value_is_the_events_fields_as_json() -> None:
    event = opened()
    value = json.loads(encode_event(event, 7, topic_prefix="sales").value)
    assert value == {
        "originator_id": str(event.originator_id),
        "originator_version": 1,
        "timestamp": "2025-03-04T05:06:07.890000+00:00",
        "actor": "rep",
        "customer_id": "c-1",
        "owner_id": "rep",
        "title": "Servers",
        "source": "web",
        "amount": "1234.50",
        "expected_close": "2025-06-30",
        "product": "hardware",
        "region": "north",
    }


def test_cloudevents_binary_mode_headers() -> None:
    event = opened()
    headers = headers_of(encode_event(event, 42, topic_prefix="sales", source="/test").headers)
    aggregate_id = str(event.originator_id)
    assert headers == {
        "ce_specversion": "1.0",
        "ce_id": f"{aggregate_id}:1",
        "ce_type": "salesledger.opportunity.OpportunityOpened.v1",
        "ce_source": "/test",
        "ce_time": "2025-03-04T05:06:07.890000+00:00",
        "ce_subject": aggregate_id,
        "ce_dataschema": "urn:salesledger.opportunity.OpportunityOpened.v1",
        "content-type": "application/json",
        "ce_aggregateversion": "1",
        "ce_position": "42",
    }


def test_event_id_is_stable_across_republishing() -> None:
    event = opened()
    first = headers_of(encode_event(event, 42, topic_prefix="sales").headers)
    again = headers_of(encode_event(event, 42, topic_prefix="other").headers)
    assert first["ce_id"] == again["ce_id"]


def test_times_are_published_in_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert to_json_value(datetime(2025, 1, 1, 8, 0, tzinfo=beijing)) == "2025-01-01T00:00:00+00:00"


def test_nested_decimals_are_strings() -> None:
    forecast_submitted: Any = ForecastSubmitted
    event = forecast_submitted(
        originator_id=uuid4(),
        originator_version=3,
        timestamp=MOMENT,
        actor="boss",
        lines=[{"opportunity_id": "o-1", "amount": Decimal("10.5")}],
        team={"rep": Decimal("20")},
        own_total=Decimal("10.5"),
        team_total=Decimal("20"),
        total=Decimal("30.5"),
    )
    value = json.loads(encode_event(event, 1, topic_prefix="sales").value)
    assert value["lines"] == [{"opportunity_id": "o-1", "amount": "10.5"}]
    assert value["team"] == {"rep": "20"}
    assert value["total"] == "30.5"


def test_decoding_reverses_encoding() -> None:
    event = opened()
    message = encode_event(event, 42, topic_prefix="sales")
    received = decode_message(message.headers, message.value)
    assert received.event_id == f"{event.originator_id}:1"
    assert received.aggregate_type == "opportunity"
    assert received.event_name == "OpportunityOpened"
    assert received.schema_version == 1
    assert received.aggregate_id == str(event.originator_id)
    assert received.aggregate_version == 1
    assert received.position == 42
    assert received.data["amount"] == "1234.50"


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ([], b"{}"),
        ([("ce_type", b"other.opportunity.X.v1")], b"{}"),
        ([("ce_type", b"salesledger.opportunity.StageAdvanced")], b"{}"),
    ],
)
def test_foreign_messages_are_refused(headers: list[tuple[str, bytes]], value: bytes) -> None:
    with pytest.raises(MessageFormatError):
        decode_message(headers, value)


def test_a_non_object_value_is_refused() -> None:
    message = encode_event(opened(), 1, topic_prefix="sales")
    with pytest.raises(MessageFormatError):
        decode_message(message.headers, b"[1, 2]")
