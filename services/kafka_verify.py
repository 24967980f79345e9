"""Checking what downstream systems received: the Kafka topics against the verified store.

Published messages carry the event's fields as JSON, not the stored bytes the chain
hashes, so a message is verified by comparing it with the message the relay would make
from the stored event at the same position (``events.messages.encode_event`` is
deterministic). Run after the store itself verified (``salesledger
verify --kafka``), this proves every message up to the latest signed head's position is
exactly an event of the store, and that none is missing. ``services.transparency.kafka``
checks the topics from Kafka alone and the public key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from events.messages import (
    AGGREGATE_TYPES,
    EventMessage,
    MessageFormatError,
    decode_message,
    encode_event,
    topic_name,
)
from services.settings import Settings

READ_BATCH = 5_000


@dataclass(frozen=True)
class ConsumedMessage:
    """A message as read from the broker."""

    topic: str
    partition: int
    offset: int
    headers: list[tuple[str, bytes | None]]
    value: bytes | None


@dataclass
class PublishedCheck:
    """What the topics hold compared with the store, up to a position."""

    upto: int
    checked: int = 0
    altered: list[tuple[int, str]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.altered or self.missing or self.unknown)

    def summary(self) -> str:
        if self.ok:
            return f"kafka: all {self.checked} messages up to position {self.upto} match the ledger"
        parts = []
        if self.altered:
            position, where = self.altered[0]
            parts.append(f"{len(self.altered)} altered (first at position {position}, {where})")
        if self.missing:
            parts.append(f"{len(self.missing)} missing (first at position {self.missing[0]})")
        if self.unknown:
            parts.append(f"{len(self.unknown)} not from this ledger (first {self.unknown[0]})")
        return f"kafka: BROKEN up to position {self.upto}: " + "; ".join(parts)


def expected_messages(ledger: Any, upto: int, topic_prefix: str) -> dict[int, EventMessage]:
    """The message for every stored event up to ``upto``, by position."""
    expected: dict[int, EventMessage] = {}
    start = 1
    while start <= upto:
        notifications = ledger.recorder.select_notifications(start, READ_BATCH, stop=upto)
        if not notifications:
            break
        for notification in notifications:
            event = ledger.mapper.to_domain_event(notification)
            message = encode_event(
                event, notification.id, topic_prefix=topic_prefix, stored_state=notification.state
            )
            if message.topic in {topic_name(topic_prefix, a) for a in AGGREGATE_TYPES}:
                expected[notification.id] = message
        start = notifications[-1].id + 1
    return expected


def compare(
    messages: Iterable[ConsumedMessage], expected: dict[int, EventMessage], upto: int
) -> PublishedCheck:
    """Every consumed message up to ``upto`` must equal the expected one at its position;
    every expected one must have been received (at least once)."""
    check = PublishedCheck(upto=upto)
    received: set[int] = set()
    for message in messages:
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        try:
            decoded = decode_message(message.headers, message.value)
        except MessageFormatError:
            check.unknown.append(where)
            continue
        if decoded.position > upto:
            continue
        check.checked += 1
        wanted = expected.get(decoded.position)
        if wanted is None:
            check.unknown.append(where)
            continue
        received.add(decoded.position)
        wanted_headers = dict(wanted.headers)
        same_headers = all(
            dict(message.headers).get(name) == wanted_headers[name]
            for name in ("ce_id", "ce_type", "ce_subject", "ce_aggregateversion", "ce_position")
        )
        if message.value != wanted.value or message.topic != wanted.topic or not same_headers:
            check.altered.append((decoded.position, where))
    check.missing = sorted(set(expected) - received)
    check.altered.sort()
    return check


def consume_all(
    settings: Settings, timeout_ms: int = 5_000, topics: list[str] | None = None
) -> Iterator[ConsumedMessage]:
    """Every message of the ledger's topics (or ``topics``), from the beginning to the
    current end."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        group_id=None,
        consumer_timeout_ms=timeout_ms,
    )
    try:
        topics = topics or [topic_name(settings.kafka_topic_prefix, a) for a in AGGREGATE_TYPES]
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = consumer.poll(timeout_ms=timeout_ms)
            if not batches:
                break
            for tp, records in batches.items():
                for record in records:
                    yield ConsumedMessage(
                        record.topic,
                        record.partition,
                        record.offset,
                        list(record.headers or []),
                        record.value,
                    )
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        consumer.close()


def verify_published(ledger: Any, upto: int, settings: Settings | None = None) -> PublishedCheck:
    """Compare the ledger's Kafka topics with its store up to position ``upto``."""
    settings = settings or Settings()
    expected = expected_messages(ledger, upto, settings.kafka_topic_prefix)
    return compare(consume_all(settings), expected, upto)
