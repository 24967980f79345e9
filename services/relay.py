"""The transactional-outbox relay: every stored event, in order, to Kafka, exactly once.

Exactly once (the default, ``RelayConfig.exactly_once``): each batch is one Kafka
transaction of a producer with a fixed ``transactional.id`` (one per relay name), and
the batch's last position is written, in the same transaction, to the relay's
positions topic (``{prefix}.relay-positions``). A relay starting (or starting again
after a failure) first fences every earlier producer of its id, which aborts whatever
transaction a killed one left open, then resumes after the last position committed
there. Consumers reading ``read_committed`` therefore see every event once: an
aborted batch is invisible to them, a committed one is never sent again. The position
is also copied to ``relay_positions`` after each commit, for operators.

An event the relay cannot publish (it cannot be decoded or encoded, or its message
would exceed the broker's limit: data stored by an older version) is parked
(``projections.parking``) and sent, in the same transaction, as a dead letter to
``{prefix}.deadletter`` (its position, id and the error); the relay goes on.

Without ``exactly_once`` (the description below), delivery is at least once:

The event store is the outbox. The relay follows its notification log from the
position it last recorded, publishes a batch (send all, then flush), and records the
new position in ``relay_positions`` only for the prefix of the batch the broker
acknowledged (``acks=all``, idempotent producer). A crash or a broker outage therefore
loses nothing and skips nothing: the relay resumes from the recorded position and
republishes at most the unacknowledged tail, which consumers recognise by ``ce_id``.

While the broker is unreachable the relay keeps running: it drops the producer (and
whatever it still buffered), waits with exponential backoff, and starts again from
its recorded position, so the order within each partition is the store's order with,
at worst, an already-published run repeated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import psycopg
from eventsourcing.persistence import Notification
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from commands.ledger import SalesLedger
from events.limits import MAX_EVENT_BYTES, MESSAGE_OVERHEAD_BYTES
from events.messages import (
    AGGREGATE_TYPES,
    DEFAULT_SOURCE,
    LEDGER_POSITION_HEADER,
    EventMessage,
    StoredForm,
    encode_event,
    topic_name,
)
from projections.parking import describe_error, ensure_parked_table, park
from services.bootstrap import EVENTS_CHANNEL
from services.database import Database

log = logging.getLogger(__name__)

POSITION_HEADER = LEDGER_POSITION_HEADER
"""The ledger position of the event a message carries (also on dead letters)."""
MESSAGE_BOUND_BYTES = MAX_EVENT_BYTES + MESSAGE_OVERHEAD_BYTES
"""The largest message the relay may send: the broker must take at least this."""


def _message_size(message: EventMessage) -> int:
    return len(message.value) + len(message.key) + sum(
        len(name) + len(value) for name, value in message.headers
    )


class PublishError(Exception):
    """The broker did not acknowledge every message of a batch."""


class BrokerLimitError(Exception):
    """The broker takes smaller messages than the ledger's event bound: the relay
    refuses to start rather than park every large event."""


RETRIED_ERRORS: tuple[type[Exception], ...] = (
    PublishError,
    KafkaError,
    psycopg.OperationalError,
    sqlite3.OperationalError,
)
"""Failures the relay waits out (broker or database away) instead of stopping."""


class Producer(Protocol):
    """The part of kafka-python's ``KafkaProducer`` the relay uses."""

    def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


class RelayPositions:
    """How far each relay has published, in the ledger's database."""

    CREATE_TABLE = (
        "CREATE TABLE IF NOT EXISTS relay_positions ("
        "relay_name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
    )
    SELECT = "SELECT position FROM relay_positions WHERE relay_name = %s"
    UPSERT = (
        "INSERT INTO relay_positions (relay_name, position) VALUES (%s, %s) "
        "ON CONFLICT (relay_name) DO UPDATE SET position = excluded.position"
    )

    def __init__(self, database: Database) -> None:
        self.database = database
        with database.transaction() as tx:
            tx.execute(self.CREATE_TABLE)

    def get(self, relay_name: str) -> int:
        """The last acknowledged notification id (0 before anything was published)."""
        with self.database.transaction() as tx:
            rows = tx.execute(self.SELECT, (relay_name,))
        return int(rows[0]["position"]) if rows else 0

    def set(self, relay_name: str, position: int) -> None:
        with self.database.transaction() as tx:
            tx.execute(self.UPSERT, (relay_name, position))


@dataclass(frozen=True)
class RelayConfig:
    """How the relay publishes; the defaults suit one broker on a laptop."""

    bootstrap_servers: str
    topic_prefix: str = "sales"
    partitions: int = 3
    replication_factor: int = 1
    source: str = DEFAULT_SOURCE
    batch_size: int = 2000
    flush_timeout: float = 30.0
    idle_wait: float = 0.5
    initial_backoff: float = 0.5
    max_backoff: float = 10.0
    relay_name: str = ""
    exactly_once: bool = True

    @property
    def positions_topic(self) -> str:
        return f"{self.topic_prefix}.relay-positions"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.deadletter"

    @property
    def name(self) -> str:
        """The key of this relay's position: one per topic prefix unless named."""
        return self.relay_name or f"kafka:{self.topic_prefix}"

    def producer_settings(self) -> dict[str, Any]:
        flush_ms = int(self.flush_timeout * 1000)
        return {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            "batch_size": 512 * 1024,
            "max_in_flight_requests_per_connection": 5,
            "request_timeout_ms": min(10_000, flush_ms),
            "delivery_timeout_ms": flush_ms + 5_000,
            "max_block_ms": 10_000,
            "reconnect_backoff_max_ms": 2_000,
            "client_id": f"salesledger-relay-{self.topic_prefix}",
            **({"transactional_id": f"salesledger-relay:{self.name}"} if self.exactly_once else {}),
        }


def create_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
) -> None:
    """Create ``topics`` with ``partitions`` partitions; existing topics are left as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    try:
        for topic in topics:
            options = {"num_partitions": partitions, "replication_factor": replication_factor}
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics({topic: options})
    finally:
        admin.close()


def broker_message_limit(bootstrap_servers: str, topic: str) -> int:
    """The largest message ``topic`` takes (its ``max.message.bytes``)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    try:
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )
    finally:
        admin.close()
    return described_message_limit(found, topic)


def described_message_limit(described: Any, topic: str) -> int:
    """``max.message.bytes`` from a ``describe_configs`` answer; a topic created a moment
    ago may not be described yet (``UnknownTopicOrPartitionError``: the relay retries)."""
    limit = described.get("topic", {}).get(topic, {}).get("max.message.bytes")
    if limit is None:
        raise UnknownTopicOrPartitionError(f"the broker does not describe {topic} yet")
    return int(limit["value"])


def read_committed_position(bootstrap_servers: str, topic: str, timeout: float = 30.0) -> int:
    """The last position a relay committed to its positions topic (0 if none)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = consumer.end_offsets([partition])[partition]
        back, deadline = 16, time.monotonic() + timeout
        while True:
            start = max(0, end - back)
            consumer.seek(partition, start)
            last: int | None = None
            while consumer.position(partition) < end:
                if time.monotonic() > deadline:
                    raise PublishError(f"could not read {topic} to its end")
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        last = int(record.value)
            if last is not None or start == 0:
                return last or 0
            back *= 8
    finally:
        consumer.close()


class TransactionalProducer(Producer, Protocol):
    """kafka-python's transactional ``KafkaProducer``, as the relay uses it."""

    def init_transactions(self) -> None: ...

    def begin_transaction(self) -> None: ...

    def commit_transaction(self) -> None: ...

    def abort_transaction(self) -> None: ...


@dataclass(frozen=True)
class Outgoing:
    """A notification to publish: its message, or (a dead letter) why it has none."""

    notification: Notification
    message: EventMessage | None
    error: BaseException | None = None


def _require_every_record_written(
    producer: Producer, futures: Sequence[Any], timeout: float
) -> None:
    """Before a commit: every record of the transaction reached its partition.

    kafka-python can end a transaction whose records expired in its buffer (a broker
    outage longer than the delivery timeout) without failing the commit; committing
    then would lose them while the position moved on. A record not written aborts the
    batch instead, to be sent again by a fresh producer from the committed position."""
    producer.flush(timeout=timeout)
    for future in futures:
        if not future.succeeded():
            raise PublishError(f"a record was not written: {future.exception!r}")


class OutboxRelay:
    """Publishes the ledger's events to Kafka in store order: exactly once (a Kafka
    transaction per batch) or at least once, never skipping; undeliverable events are
    parked and sent as dead letters."""

    def __init__(
        self,
        ledger: SalesLedger,
        database: Database,
        config: RelayConfig,
        *,
        producer_factory: Callable[[], Producer] | None = None,
        topic_creator: Callable[[Sequence[str]], None] | None = None,
        message_limit: Callable[[str], int] | None = None,
    ) -> None:
        self.ledger = ledger
        self.database = database
        self.config = config
        self.positions = RelayPositions(database)
        with database.transaction() as tx:
            ensure_parked_table(tx)
        self.position = self.positions.get(config.name)
        self.published = 0
        self.parked = 0
        self._producer_factory = producer_factory or self._kafka_producer
        self._topic_creator = topic_creator or self._create_kafka_topics
        self._message_limit = message_limit or (
            lambda topic: broker_message_limit(config.bootstrap_servers, topic)
        )
        self._limit: int | None = None
        self._producer: Producer | None = None
        self._known_topics: set[str] = set()

    def _kafka_producer(self) -> Producer:
        producer = KafkaProducer(**self.config.producer_settings())
        if self.config.exactly_once:
            producer.init_transactions()  # fences earlier producers, aborting their batch
            committed = read_committed_position(
                self.config.bootstrap_servers, self.config.positions_topic
            )
            if committed:  # else a first start, or one after at-least-once relaying
                self.position = committed
        result: Producer = producer
        return result

    def _create_kafka_topics(self, topics: Sequence[str]) -> None:
        create_topics(
            self.config.bootstrap_servers,
            topics,
            self.config.partitions,
            self.config.replication_factor,
        )

    def ensure_topics(self, topics: Sequence[str] | None = None) -> None:
        """Create the topics (by default one per aggregate type, the dead letters') and
        the positions topic (one partition) unless already done."""
        wanted = (
            [topic_name(self.config.topic_prefix, a) for a in AGGREGATE_TYPES]
            + [self.config.dead_letter_topic]
            if topics is None
            else list(topics)
        )
        missing = [t for t in wanted if t not in self._known_topics]
        if missing:
            self._topic_creator(missing)
            self._known_topics.update(missing)
        if self.config.positions_topic not in self._known_topics:
            if self._topic_creator == self._create_kafka_topics:
                create_topics(
                    self.config.bootstrap_servers,
                    [self.config.positions_topic],
                    1,
                    self.config.replication_factor,
                )
            self._known_topics.add(self.config.positions_topic)

    def check_broker_limit(self) -> int:
        """The broker's message limit; ``BrokerLimitError`` if it is below the ledger's
        bound on a message (``MESSAGE_BOUND_BYTES``)."""
        if self._limit is None:
            topic = topic_name(self.config.topic_prefix, AGGREGATE_TYPES[0])
            limit = self._message_limit(topic)
            if limit < MESSAGE_BOUND_BYTES:
                raise BrokerLimitError(
                    f"topic {topic} takes messages of at most {limit} bytes; the ledger's "
                    f"events need {MESSAGE_BOUND_BYTES}: raise max.message.bytes"
                )
            self._limit = limit
        return self._limit

    def encode(self, notification: Notification, event_hash: bytes | None = None) -> EventMessage:
        """The event's message (``encode_event`` adds ``ce_ledgerposition``); with its
        chain hash, the self-verifying headers too."""
        event = self.ledger.mapper.to_domain_event(notification)
        stored = (
            StoredForm(notification.topic, notification.state, event_hash) if event_hash else None
        )
        return encode_event(
            event,
            notification.id,
            topic_prefix=self.config.topic_prefix,
            source=self.config.source,
            stored=stored,
        )

    def event_hashes(self, notifications: Sequence[Notification]) -> dict[int, bytes]:
        """The chain hashes of a batch, by position (the self-verifying headers carry them)."""
        select = getattr(self.ledger.recorder, "select_chained", None)
        if select is None or not notifications:
            return {}
        records = select(notifications[0].id - 1, notifications[-1].id, len(notifications))
        return {r.position: r.hash for r in records if r.hash is not None}

    def prepare(self, notification: Notification, event_hash: bytes | None = None) -> Outgoing:
        """The notification's message, or the error that parks it. A message too large
        with its stored form is sent without it (it is then not self-verifying)."""
        try:
            bound = min(MESSAGE_BOUND_BYTES, self._limit or MESSAGE_BOUND_BYTES)
            message = self.encode(notification, event_hash)
            size = _message_size(message)
            if size > bound and event_hash is not None:
                message = self.encode(notification)
                size = _message_size(message)
            if size > bound:
                raise PublishError(f"the message is {size} bytes, over the bound")
        except Exception as error:  # noqa: BLE001 - whatever it is, the event is parked
            return Outgoing(notification, None, error)
        return Outgoing(notification, message)

    def _dead_letter(self, outgoing: Outgoing) -> EventMessage:
        n = outgoing.notification
        assert outgoing.error is not None
        value = {
            "position": n.id,
            "originator_id": str(n.originator_id),
            "originator_version": n.originator_version,
            "topic": n.topic,
            "error": describe_error(outgoing.error),
            "relay": self.config.name,
        }
        return EventMessage(
            self.config.dead_letter_topic,
            str(n.originator_id).encode(),
            json.dumps(value).encode(),
            [(POSITION_HEADER, str(n.id).encode())],
        )

    def _park(self, batch: Sequence[Outgoing]) -> list[EventMessage]:
        """Park the batch's undeliverable events (alerting); their dead letters."""
        failed = [o for o in batch if o.error is not None]
        if failed:
            with self.database.transaction() as tx:
                for outgoing in failed:
                    assert outgoing.error is not None
                    park(tx, self.config.name, outgoing.notification.id, outgoing.error)
            self.parked += len(failed)
        return [self._dead_letter(o) for o in failed]

    def publish_batch(self) -> int:
        """Publish the next batch after the recorded position; returns how many were
        published (acknowledged, or committed). Raises ``PublishError`` (at least once:
        after recording the acknowledged prefix) if the broker did not take them all."""
        if self._producer is None:
            self._producer = self._producer_factory()
        notifications = self.ledger.recorder.select_notifications(
            self.position, self.config.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        hashes = self.event_hashes(notifications)
        batch = [self.prepare(n, hashes.get(n.id)) for n in notifications]
        self.ensure_topics(sorted({o.message.topic for o in batch if o.message is not None}))
        if self.config.exactly_once:
            return self._publish_in_transaction(batch)
        return self._publish_at_least_once(batch)

    def _publish_in_transaction(self, batch: Sequence[Outgoing]) -> int:
        producer = cast(TransactionalProducer, self._producer)
        dead_letters = self._park(batch)
        last = batch[-1].notification.id
        try:
            producer.begin_transaction()
            futures = [
                producer.send(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
                for message in [o.message for o in batch if o.message is not None] + dead_letters
            ]
            futures.append(producer.send(
                self.config.positions_topic,
                value=str(last).encode(),
                key=self.config.name.encode(),
                headers=[],
            ))
            _require_every_record_written(producer, futures, self.config.flush_timeout)
            producer.commit_transaction()
        except (KafkaError, PublishError) as error:
            with contextlib.suppress(Exception):
                producer.abort_transaction()
            raise PublishError(f"the batch up to {last} was not committed: {error!r}") from error
        self.position = last
        self.positions.set(self.config.name, last)
        self.published += len(batch)
        return len(batch)

    def _publish_at_least_once(self, batch: Sequence[Outgoing]) -> int:
        assert self._producer is not None
        dead_letters = {o.notification.id: m for o, m in zip(
            [o for o in batch if o.error is not None], self._park(batch), strict=True
        )}
        sent: list[tuple[int, Any]] = []
        send_error: BaseException | None = None
        for outgoing in batch:
            position = outgoing.notification.id
            message = outgoing.message or dead_letters[position]
            try:
                future = self._producer.send(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
            except KafkaError as error:
                send_error = error
                break
            sent.append((position, future))
        try:
            self._producer.flush(timeout=self.config.flush_timeout)
        except KafkaError as error:
            send_error = send_error or error
        acknowledged = 0
        for notification_id, future in sent:
            if not future.succeeded():
                send_error = send_error or future.exception or PublishError("not acknowledged")
                break
            self.position = notification_id
            acknowledged += 1
        if acknowledged:
            self.positions.set(self.config.name, self.position)
            self.published += acknowledged
        if send_error is not None:
            raise PublishError(
                f"{acknowledged} of {len(batch)} acknowledged: {send_error!r}"
            ) from send_error
        return acknowledged

    def discard_producer(self) -> None:
        """Drop the producer and anything it still buffered; the next batch starts afresh
        from the recorded position, so per-key order holds."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # noqa: BLE001 - closing a broken producer may fail in any way
                log.debug("closing the producer failed", exc_info=True)

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False) -> int:
        """Publish until ``stop`` is set (or, with ``until_idle``, until caught up).

        Returns how many events were acknowledged in this run.
        """
        stop = stop or threading.Event()
        backoff = self.config.initial_backoff
        started_with = self.published
        log.info("relay %s starting after position %d", self.config.name, self.position)
        while not stop.is_set():
            try:
                self.ensure_topics()
                self.check_broker_limit()
                count = self.publish_batch()
            except RETRIED_ERRORS as error:
                log.warning(
                    "relay %s: publishing failed at position %d (%s); retrying in %.1fs",
                    self.config.name, self.position, error, backoff,
                )
                self.discard_producer()
                stop.wait(backoff)
                backoff = min(backoff * 2, self.config.max_backoff)
                continue
            backoff = self.config.initial_backoff
            if count:
                log.debug("relay %s: published up to %d", self.config.name, self.position)
                continue
            if until_idle and self.position >= self.ledger.store.max_committed_notification_id():
                break
            self.database.wait_for_notify(EVENTS_CHANNEL, self.config.idle_wait)
        return self.published - started_with

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.config.flush_timeout)


def republish_parked(
    ledger: SalesLedger, database: Database, settings: Any, consumer: str, position: int
) -> None:
    """Publish a parked event once more (``salesledger parked --retry``, after an
    upgrade), to its own topic, after the events that followed it; raises what it
    raises if it still cannot be published. ``consumer`` is the relay's name."""
    prefix = consumer.removeprefix("kafka:")
    config = RelayConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers, topic_prefix=prefix, relay_name=consumer
    )
    relay = OutboxRelay(ledger, database, config)
    notifications = ledger.recorder.select_notifications(position, 1)
    if not notifications or notifications[0].id != position:
        raise PublishError(f"no event at position {position}")
    outgoing = relay.prepare(notifications[0])
    if outgoing.error is not None:
        raise outgoing.error
    assert outgoing.message is not None
    settings_without_transactions = {
        k: v for k, v in config.producer_settings().items() if k != "transactional_id"
    }
    producer = KafkaProducer(**settings_without_transactions)
    try:
        message = outgoing.message
        future = producer.send(
            message.topic, value=message.value, key=message.key, headers=message.headers
        )
        producer.flush(timeout=config.flush_timeout)
        if not future.succeeded():
            raise PublishError(f"not acknowledged: {future.exception!r}")
    finally:
        producer.close(timeout=config.flush_timeout)
