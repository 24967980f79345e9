"""The relay and the subscriber against the real broker and PostgreSQL.

Each test gets its own database and its own topic prefix. They need the broker
(``KAFKA_BOOTSTRAP_SERVERS``, ``scripts/kafka start``) and PostgreSQL (``POSTGRES_*``,
``scripts/postgres start``) and fail when either is unreachable. The outage test stops
and restarts the broker with ``scripts/kafka``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from aggregates.errors import DomainError
from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.opportunity import Opportunity
from aggregates.organisation import Role
from commands.ledger import SalesLedger
from events.messages import AGGREGATE_TYPES, ReceivedEvent, decode_message, topic_name
from events.opportunity import OpportunityOpened
from projections.parking import parked_events
from services.bootstrap import build_ledger
from services.database import Database
from services.relay import OutboxRelay, RelayConfig, RelayPositions
from services.settings import Settings
from services.subscriber import DealState, FunnelSubscriber, funnel_of
from tests.conftest import (
    create_database,
    drop_database,
    postgres_admin_conninfo,
    wait_for_read_horizon,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
PARTITIONS = 3


@dataclass
class Store:
    """A fresh PostgreSQL database holding a ledger's events."""

    settings: Settings
    ledger: SalesLedger
    database: Database

    def env(self) -> dict[str, str]:
        """Environment for a ``salesledger`` subprocess on this store."""
        s = self.settings
        return {
            **os.environ,
            "LEDGER_STORE": "postgres",
            "LEDGER_POSTGRES_HOST": s.postgres_host,
            "LEDGER_POSTGRES_PORT": str(s.postgres_port),
            "LEDGER_POSTGRES_USER": s.postgres_user,
            "LEDGER_POSTGRES_PASSWORD": s.postgres_password,
            "LEDGER_POSTGRES_DBNAME": s.postgres_dbname,
            "LEDGER_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        }

    def max_position(self) -> int:
        wait_for_read_horizon(self.ledger)
        notifications = self.ledger.recorder.select_notifications(None, 10**7)
        return notifications[-1].id if notifications else 0


@pytest.fixture(scope="module")
def broker() -> str:
    try:
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
    except Exception as error:  # noqa: BLE001 - any failure here means no broker
        pytest.fail(f"Kafka broker at {BOOTSTRAP} unreachable ({error!r}); run scripts/kafka start")
    admin.close()
    return BOOTSTRAP


@pytest.fixture
def store() -> Iterator[Store]:
    base = Settings().model_copy(update={"store": "postgres"})
    name = f"kafka_it_{uuid.uuid4().hex[:10]}"
    create_database(name)
    settings = base.model_copy(update={"postgres_dbname": name})
    try:
        ledger = build_ledger(settings)
        database = Database(settings)
        yield Store(settings, ledger, database)
        database.close()
        ledger.close()
    finally:
        drop_database(name)


@pytest.fixture
def prefix() -> str:
    return f"it{uuid.uuid4().hex[:10]}"


# The workload: a small sales team working deals through the funnel.


class SalesFloor:
    """Issues a random but valid mix of commands, as a sales team would."""

    def __init__(self, ledger: SalesLedger, seed: int) -> None:
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.reps = ["rep-a", "rep-b", "rep-c"]
        self.customers: dict[str, list[str]] = {rep: [] for rep in self.reps}
        self.deals: dict[str, dict[str, object]] = {}
        self.commands = 0

    def set_up(self) -> None:
        self.ledger.set_up_organisation("Kafka Test Co", "admin", "Admin")
        self.ledger.add_person("boss", "Boss", Role.MANAGER, "admin", actor="admin")
        for rep in self.reps:
            self.ledger.add_person(rep, rep.title(), Role.SALES_REP, "boss", actor="admin")
        for n in range(6):
            owner = self.reps[n % len(self.reps)]
            result = self.ledger.register_customer(
                name=f"Customer {uuid.uuid4().hex[:8]} {n}",
                source="web",
                owner_id=owner,
                actor="boss",
            )
            self.customers[owner].append(result.aggregate_id)  # a rep opens deals on their own

    def open_deal(self) -> None:
        owner = self.rng.choice(self.reps)
        result = self.ledger.open_opportunity(
            customer_id=self.rng.choice(self.customers[owner]),
            owner_id=owner,
            title="Deal",
            source=self.rng.choice(["web", "referral", "campaign"]),
            amount=Decimal(self.rng.randrange(1_000, 100_000)) / 100,
            expected_close=date(2025, 1, 1) + timedelta(days=self.rng.randrange(365)),
            product="servers",
            region="north",
            actor=owner,
        )
        self.deals[result.aggregate_id] = {
            "owner": owner,
            "stage": 1,
            "status": "open",
            "qualified": False,
        }

    def step(self) -> None:
        """One command: open a deal or move an existing one."""
        self.commands += 1
        if not self.deals or self.rng.random() < 0.2:
            self.open_deal()
            return
        deal_id = self.rng.choice(list(self.deals))
        deal = self.deals[deal_id]
        actor = str(deal["owner"])
        stage = int(str(deal["stage"]))
        try:
            if deal["status"] != "open":
                self.ledger.reopen_opportunity(deal_id, "customer came back", 5, actor=actor)
                deal.update(status="open", stage=5)
            elif not deal["qualified"]:
                if self.rng.random() < 0.15:
                    self.ledger.disqualify_opportunity(
                        deal_id,
                        dict.fromkeys(QUALIFICATION_CRITERIA, False),
                        "no budget",
                        actor=actor,
                    )
                    deal.update(stage=1)
                else:
                    self.ledger.qualify_opportunity(
                        deal_id, dict.fromkeys(QUALIFICATION_CRITERIA, True), actor=actor
                    )
                    deal.update(qualified=True)
            elif stage == 7 and self.rng.random() < 0.6:
                self.ledger.win_opportunity(
                    deal_id,
                    Decimal(self.rng.randrange(1_000, 90_000)) / 100,
                    datetime.now(UTC).date(),
                    actor=actor,
                )
                deal.update(status="won", stage=8)
            elif self.rng.random() < 0.08:
                self.ledger.lose_opportunity(
                    deal_id, "price", "Rival", datetime.now(UTC).date(), actor=actor
                )
                deal.update(status="lost")
            elif self.rng.random() < 0.15:
                self.ledger.revise_amount(
                    deal_id,
                    Decimal(self.rng.randrange(1_000, 100_000)) / 100 + Decimal("0.01"),
                    "scope changed",
                    actor=actor,
                )
            elif stage < 7:
                to_stage = min(7, stage + self.rng.randint(1, 2))
                self.ledger.advance_stage(deal_id, to_stage, actor=actor)
                deal.update(stage=to_stage)
            else:
                self.ledger.log_opportunity_activity(deal_id, "call", "follow-up", actor=actor)
        except DomainError:
            pass

    def run(self, commands: int) -> None:
        for _ in range(commands):
            self.step()


# Reading everything back from Kafka, and what must hold of it.


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int
    key: bytes
    event: ReceivedEvent


def read_all(prefix: str) -> list[Delivered]:
    """Every message on the prefix's topics, partition by partition, in offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed"
    )
    try:
        partitions = [
            TopicPartition(topic_name(prefix, aggregate), p)
            for aggregate in AGGREGATE_TYPES
            for p in range(PARTITIONS)
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        delivered: list[Delivered] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read the topics to their end"
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    event = decode_message(r.headers, r.value)
                    delivered.append(Delivered(tp.topic, tp.partition, r.offset, r.key, event))
        return delivered
    finally:
        consumer.close()


def assert_every_event_delivered_in_order(store: Store, delivered: list[Delivered]) -> int:
    """Every stored event is on Kafka under its id; per key, in one partition, the
    versions rise strictly once repeats of an already-seen ``ce_id`` are dropped.
    Returns the number of duplicates."""
    wait_for_read_horizon(store.ledger)
    stored = store.ledger.recorder.select_notifications(None, 10**7)
    expected = {f"{n.originator_id}:{n.originator_version}": n.id for n in stored}
    positions = {d.event.event_id: d.event.position for d in delivered}
    assert positions == expected, "events missing from Kafka, or unknown ones on it"
    partition_of: dict[bytes, tuple[str, int]] = {}
    last_version: dict[bytes, int] = {}
    seen: set[str] = set()
    duplicates = 0
    for d in sorted(delivered, key=lambda d: (d.topic, d.partition, d.offset)):
        assert d.key == d.event.aggregate_id.encode()
        assert partition_of.setdefault(d.key, (d.topic, d.partition)) == (d.topic, d.partition)
        if d.event.event_id in seen:
            duplicates += 1
            continue
        seen.add(d.event.event_id)
        assert d.event.aggregate_version == last_version.get(d.key, 0) + 1, (
            f"{d.event.aggregate_id}: v{d.event.aggregate_version} after "
            f"v{last_version.get(d.key, 0)}"
        )
        last_version[d.key] = d.event.aggregate_version
    return duplicates


def funnel_from_store(ledger: SalesLedger) -> dict[tuple[int, str], object]:
    """The funnel from the event store: every opportunity aggregate as it is now."""
    wait_for_read_horizon(ledger)
    opened = ledger.recorder.select_notifications(
        None, 10**7, topics=[get_topic(OpportunityOpened)]
    )
    deals = []
    for notification in opened:
        deal = ledger.load(Opportunity, notification.originator_id)
        deals.append(DealState(deal.stage, deal.status.value, deal.amount, deal.won_amount))
    return dict(funnel_of(deals))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def relay_config(prefix: str, **overrides: object) -> RelayConfig:
    settings: dict[str, object] = {
        "bootstrap_servers": BOOTSTRAP,
        "topic_prefix": prefix,
        "partitions": PARTITIONS,
        "batch_size": 200,
        "flush_timeout": 5.0,
        "max_backoff": 1.0,
    }
    settings.update(overrides)
    return RelayConfig(**settings)  # type: ignore[arg-type]


def published_position(store: Store, prefix: str) -> int:
    return RelayPositions(store.database).get(f"kafka:{prefix}")


# The tests.


def test_subscriber_rebuilds_the_databases_funnel_from_kafka_alone(
    broker: str, store: Store, prefix: str
) -> None:
    floor = SalesFloor(store.ledger, seed=1)
    floor.set_up()
    relay = OutboxRelay(store.ledger, store.database, relay_config(prefix))
    stop = threading.Event()
    relaying = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    relaying.start()
    try:
        floor.run(400)
        wait_until(lambda: relay.position == store.max_position(), 60, "the relay caught up")
    finally:
        stop.set()
        relaying.join(30)
        relay.close()

    subscriber = FunnelSubscriber(broker, prefix, group_id=f"{prefix}-funnel")
    try:
        fold = subscriber.run(idle_timeout=5)
    finally:
        subscriber.close()

    assert fold.gaps == []
    expected = funnel_from_store(store.ledger)
    assert sum(cell.count for cell in expected.values()) == len(floor.deals)  # type: ignore[attr-defined]
    assert fold.funnel() == expected
    assert_every_event_delivered_in_order(store, read_all(prefix))


def test_killed_relay_resumes_without_losing_or_reordering_events(
    broker: str, store: Store, prefix: str
) -> None:
    """Three ``kill -9`` of the relay while commands keep coming: every event is on
    Kafka exactly once for a ``read_committed`` consumer, in order."""
    floor = SalesFloor(store.ledger, seed=2)
    floor.set_up()
    floor.run(600)
    command = [
        sys.executable,
        "-m",
        "services.cli",
        "relay",
        "--topic-prefix",
        prefix,
        "--partitions",
        str(PARTITIONS),
        "--batch-size",
        "25",
    ]

    def start_relay() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=REPO, env=store.env(), stdout=subprocess.DEVNULL)

    def wait_for_progress_after(position: int) -> None:
        wait_until(lambda: published_position(store, prefix) > position, 60, "the relay went on")

    killed = threading.Event()

    def write_until_the_kills_are_done() -> None:
        while not killed.is_set():
            floor.run(25)

    relay = start_relay()
    writing = threading.Thread(target=write_until_the_kills_are_done)
    try:
        wait_until(lambda: published_position(store, prefix) > 0, 60, "the relay published")
        writing.start()
        for _ in range(3):
            wait_for_progress_after(published_position(store, prefix))
            time.sleep(random.uniform(0.05, 0.4))  # mid-batch, mid-transaction
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            assert writing.is_alive(), "commands kept coming while the relay was killed"
            relay = start_relay()
        killed.set()
        writing.join(120)
        wait_until(
            lambda: published_position(store, prefix) == store.max_position(),
            90,
            "the restarted relay caught up",
        )
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)

    assert assert_every_event_delivered_in_order(store, read_all(prefix)) == 0


def test_broker_outage_delays_but_loses_nothing(broker: str, store: Store, prefix: str) -> None:
    floor = SalesFloor(store.ledger, seed=3)
    floor.set_up()
    floor.run(100)
    relay = OutboxRelay(store.ledger, store.database, relay_config(prefix))
    stop = threading.Event()
    relaying = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    relaying.start()
    kafka_script = str(REPO / "scripts" / "kafka")
    try:
        wait_until(lambda: relay.position == store.max_position(), 60, "the relay caught up")
        subprocess.run([kafka_script, "stop"], check=True, timeout=90)
        try:
            floor.run(300)
            time.sleep(2)
            assert relay.position < store.max_position(), "published while the broker was down"
        finally:
            subprocess.run([kafka_script, "start"], check=True, timeout=180)
        wait_until(
            lambda: relay.position == store.max_position(),
            120,
            "the relay caught up after the outage",
        )
        assert relaying.is_alive()
    finally:
        stop.set()
        relaying.join(30)
        relay.close()

    assert_every_event_delivered_in_order(store, read_all(prefix))


def test_an_unpublishable_event_is_parked_and_sent_as_a_dead_letter(
    broker: str, store: Store, prefix: str
) -> None:
    floor = SalesFloor(store.ledger, seed=4)
    floor.set_up()
    wait_for_read_horizon(store.ledger)
    table = store.ledger.recorder.events_table_name  # type: ignore[attr-defined]
    topic = get_topic(OpportunityOpened)
    huge = b'{"timestamp": "2026-01-01", "actor": "x", "title": "' + b"x" * 400_000 + b'"}'
    below_the_application = postgres_admin_conninfo(store.settings.postgres_dbname)
    with psycopg.connect(below_the_application, autocommit=True) as admin:
        injected = [
            int(row[0])
            for state in (b"\xff not json", huge)
            if (
                row := admin.execute(
                    f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                    "VALUES (%s, 1, %s, %s) RETURNING notification_id",
                    (uuid.uuid4(), topic, state),
                ).fetchone()
            )
            is not None
        ]
    floor.run(50)
    relay = OutboxRelay(store.ledger, store.database, relay_config(prefix))
    relay.ensure_topics()
    assert relay.check_broker_limit() >= 256 * 1024
    try:
        relay.run(until_idle=True)
    finally:
        relay.close()
    assert relay.position == store.max_position()
    with store.database.transaction() as tx:
        parked = parked_events(tx, f"kafka:{prefix}")
    assert [p.position for p in parked] == injected
    consumer = KafkaConsumer(
        f"{prefix}.deadletter",
        bootstrap_servers=BOOTSTRAP,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=5000,
    )
    letters = sorted(json.loads(record.value)["position"] for record in consumer)
    consumer.close()
    assert letters == injected
    delivered = {d.event.position for d in read_all(prefix)}
    stored = {n.id for n in store.ledger.recorder.select_notifications(None, 10**7)}
    assert delivered == stored - set(injected)
