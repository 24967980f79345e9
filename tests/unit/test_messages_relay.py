"""The relay's bookkeeping against a recording fake producer, on the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.organisation import Role
from commands.ledger import SalesLedger
from events.messages import decode_message
from services.bootstrap import build_ledger
from services.database import Database
from services.relay import (
    BrokerLimitError,
    OutboxRelay,
    PublishError,
    RelayConfig,
    described_message_limit,
)
from services.settings import Settings


@dataclass
class FakeFuture:
    ok: bool

    def succeeded(self) -> bool:
        return self.ok

    def failed(self) -> bool:
        return not self.ok

    @property
    def exception(self) -> BaseException | None:
        return None if self.ok else KafkaTimeoutError("no ack")


@dataclass
class RecordingProducer:
    """Acknowledges the first ``acknowledge`` messages it is given, then none."""

    acknowledge: int = 10**9
    sent: list[tuple[str, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    closed: bool = False

    def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> FakeFuture:
        self.sent.append((topic, key, headers))
        return FakeFuture(len(self.sent) <= self.acknowledge)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings().model_copy(
        update={"store": "sqlite", "sqlite_path": str(tmp_path / "ledger.db")}
    )


@pytest.fixture
def ledger(settings: Settings) -> SalesLedger:
    ledger = build_ledger(settings)
    ledger.set_up_organisation("Org", "admin", "Admin")
    ledger.add_person("rep", "Rep", Role.SALES_REP, "admin", actor="admin")
    customer = ledger.register_customer(name="ACME", source="web", owner_id="rep", actor="rep")
    deal = ledger.open_opportunity(
        customer_id=customer.aggregate_id,
        owner_id="rep",
        title="Servers",
        source="web",
        amount=Decimal("100"),
        expected_close=date(2025, 6, 30),
        product="p",
        region="r",
        actor="rep",
    )
    ledger.qualify_opportunity(
        deal.aggregate_id, dict.fromkeys(QUALIFICATION_CRITERIA, True), actor="rep"
    )
    ledger.advance_stage(deal.aggregate_id, 3, actor="rep")
    return ledger


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    yield database
    database.close()


def relay_with(
    ledger: SalesLedger, database: Database, producers: Sequence[RecordingProducer]
) -> OutboxRelay:
    queue = list(producers)
    return OutboxRelay(
        ledger,
        database,
        RelayConfig(
            bootstrap_servers="unused:9092", topic_prefix="t", batch_size=100, exactly_once=False
        ),
        producer_factory=lambda: queue.pop(0),
        topic_creator=lambda topics: None,
        message_limit=lambda topic: 10**7,
    )


def total_events(ledger: SalesLedger) -> int:
    return len(ledger.recorder.select_notifications(None, 1000))


def test_publishes_every_event_in_store_order_and_records_the_position(
    ledger: SalesLedger, database: Database
) -> None:
    producer = RecordingProducer()
    relay = relay_with(ledger, database, [producer])
    assert relay.publish_batch() == total_events(ledger)
    positions = [decode_message(headers, b"{}").position for _, _, headers in producer.sent]
    assert positions == sorted(positions)
    assert relay_with(ledger, database, []).position == positions[-1]
    assert relay.publish_batch() == 0


def test_only_the_acknowledged_prefix_is_recorded(ledger: SalesLedger, database: Database) -> None:
    failing = RecordingProducer(acknowledge=3)
    relay = relay_with(ledger, database, [failing, RecordingProducer()])
    with pytest.raises(PublishError):
        relay.publish_batch()
    third = decode_message(failing.sent[2][2], b"{}").position
    assert relay_with(ledger, database, []).position == third


def test_after_a_failure_it_republishes_the_unacknowledged_tail_from_a_new_producer(
    ledger: SalesLedger, database: Database
) -> None:
    failing, healthy = RecordingProducer(acknowledge=3), RecordingProducer()
    relay = relay_with(ledger, database, [failing, healthy])
    with pytest.raises(PublishError):
        relay.publish_batch()
    relay.discard_producer()
    assert failing.closed
    assert relay.publish_batch() == total_events(ledger) - 3
    republished = [decode_message(h, b"{}").event_id for _, _, h in healthy.sent]
    unacknowledged = [decode_message(h, b"{}").event_id for _, _, h in failing.sent[3:]]
    assert republished == unacknowledged


def test_topics_are_named_after_the_aggregate_types(
    ledger: SalesLedger, database: Database
) -> None:
    producer = RecordingProducer()
    relay_with(ledger, database, [producer]).publish_batch()
    assert {topic for topic, _, _ in producer.sent} == {
        "t.organisation",
        "t.customer",
        "t.opportunity",
    }


def test_refuses_to_start_on_a_broker_taking_smaller_messages_than_the_bound(
    ledger: SalesLedger, database: Database
) -> None:
    relay = OutboxRelay(
        ledger,
        database,
        RelayConfig(bootstrap_servers="unused:9092", topic_prefix="t", exactly_once=False),
        producer_factory=RecordingProducer,
        topic_creator=lambda topics: None,
        message_limit=lambda topic: 100_000,
    )
    with pytest.raises(BrokerLimitError, match="max.message.bytes"):
        relay.run(until_idle=True)


def test_a_topic_not_described_yet_is_a_retried_error_not_a_crash() -> None:
    described = {"topic": {"t.customer": {"max.message.bytes": {"value": "1048588"}}}}
    assert described_message_limit(described, "t.customer") == 1_048_588
    with pytest.raises(UnknownTopicOrPartitionError):
        described_message_limit({"topic": {"t.customer": {}}}, "t.customer")
    with pytest.raises(UnknownTopicOrPartitionError):
        described_message_limit({}, "t.customer")


def test_a_topic_the_broker_does_not_describe_yet_is_asked_again(
    ledger: SalesLedger, database: Database
) -> None:
    answers: list[int | Exception] = [UnknownTopicOrPartitionError("not described yet"), 10**7]

    def message_limit(topic: str) -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    producer = RecordingProducer()
    relay = OutboxRelay(
        ledger,
        database,
        RelayConfig(
            bootstrap_servers="unused:9092", topic_prefix="t", exactly_once=False,
            initial_backoff=0.01,
        ),  # fmt: skip
        producer_factory=lambda: producer,
        topic_creator=lambda topics: None,
        message_limit=message_limit,
    )
    assert relay.run(until_idle=True) == total_events(ledger)
    assert answers == []
