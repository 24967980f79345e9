"""The transactional-outbox relay: every stored event, in order, to Kafka.

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
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from eventsourcing.persistence import Notification
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from commands.ledger import SalesLedger
from events.messages import AGGREGATE_TYPES, DEFAULT_SOURCE, EventMessage, encode_event, topic_name
from services.bootstrap import EVENTS_CHANNEL
from services.database import Database

log = logging.getLogger(__name__)

class PublishError(Exception):
    """The broker did not acknowledge every message of a batch."""


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


class OutboxRelay:
    """Publishes the ledger's events to Kafka in store order, at least once, never skipping."""

    def __init__(
        self,
        ledger: SalesLedger,
        database: Database,
        config: RelayConfig,
        *,
        producer_factory: Callable[[], Producer] | None = None,
        topic_creator: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.database = database
        self.config = config
        self.positions = RelayPositions(database)
        self.position = self.positions.get(config.name)
        self.published = 0
        self._producer_factory = producer_factory or self._kafka_producer
        self._topic_creator = topic_creator or self._create_kafka_topics
        self._producer: Producer | None = None
        self._known_topics: set[str] = set()

    def _kafka_producer(self) -> Producer:
        producer: Producer = KafkaProducer(**self.config.producer_settings())
        return producer

    def _create_kafka_topics(self, topics: Sequence[str]) -> None:
        create_topics(
            self.config.bootstrap_servers,
            topics,
            self.config.partitions,
            self.config.replication_factor,
        )

    def ensure_topics(self, topics: Sequence[str] | None = None) -> None:
        """Create the topics (by default one per aggregate type) unless already done."""
        wanted = (
            [topic_name(self.config.topic_prefix, a) for a in AGGREGATE_TYPES]
            if topics is None
            else list(topics)
        )
        missing = [t for t in wanted if t not in self._known_topics]
        if missing:
            self._topic_creator(missing)
            self._known_topics.update(missing)

    def encode(self, notification: Notification) -> EventMessage:
        event = self.ledger.mapper.to_domain_event(notification)
        return encode_event(
            event,
            notification.id,
            topic_prefix=self.config.topic_prefix,
            source=self.config.source,
        )

    def publish_batch(self) -> int:
        """Publish the next batch after the recorded position; returns how many were
        acknowledged. Raises ``PublishError`` (after recording the acknowledged prefix)
        if the broker did not acknowledge all of them."""
        notifications = self.ledger.recorder.select_notifications(
            self.position, self.config.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        messages = [self.encode(n) for n in notifications]
        self.ensure_topics(sorted({m.topic for m in messages}))
        if self._producer is None:
            self._producer = self._producer_factory()
        sent: list[tuple[int, Any]] = []
        send_error: BaseException | None = None
        for notification, message in zip(notifications, messages, strict=True):
            try:
                future = self._producer.send(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
            except KafkaError as error:
                send_error = error
                break
            sent.append((notification.id, future))
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
                f"{acknowledged} of {len(notifications)} acknowledged: {send_error!r}"
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
