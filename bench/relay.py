"""Relay throughput to Kafka (acks=all) beside a raw kafka-python producer, and relay memory.

Writes ``--events`` events into a fresh PostgreSQL database, then, in the same run and
alternating for ``--rounds`` rounds:

- relay: ``OutboxRelay`` publishes every stored event from position 0 to fresh topics
  (read from the store, decode, encode as JSON with CloudEvents headers, send, flush,
  record the position) until caught up;
- raw: one ``KafkaProducer`` with the same settings sends the same messages (same topics
  layout, keys, values and headers, so the same sizes), then flushes.

Prints events/s for both, the ratio (best round of each), and the relay's RSS before,
at its peak and after, sampled every 20 ms.

    python -m bench.relay --events 50000 --rounds 2

Connection settings: POSTGRES_* and KAFKA_BOOTSTRAP_SERVERS (see README).
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
from kafka import KafkaProducer

from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.opportunity import Opportunity
from aggregates.organisation import Role
from events.messages import EventMessage
from services.bootstrap import build_ledger
from services.database import Database
from services.relay import OutboxRelay, RelayConfig, create_topics
from services.settings import Settings


class RssSampler:
    """Samples this process's resident set size in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_bytes() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.rss_bytes())


def fill_store(settings: Settings, events: int) -> int:
    """Write about ``events`` opportunity events (open, qualify, five stage moves)."""
    ledger = build_ledger(settings)
    ledger.set_up_organisation("Bench Co", "admin", "Admin")
    ledger.add_person("rep", "Rep", Role.SALES_REP, "admin", actor="admin")
    org = ledger.organisation()
    written = 2
    criteria = dict.fromkeys(QUALIFICATION_CRITERIA, True)
    while written < events:
        deals = []
        for n in range(200):
            deal = Opportunity.open(
                customer_id=str(uuid.uuid4()), owner_id="rep", title=f"Deal {written + n}",
                source="web", amount=Decimal("12345.67"), expected_close=date(2025, 6, 30),
                product="servers", region="north", actor="rep", org=org,
            )
            deal.qualify(criteria, "rep")
            for stage in range(2, 7):
                deal.advance_stage(stage, None, "rep")
            deals.append(deal)
        ledger.save(*deals)
        written += 7 * len(deals)
    ledger.close()
    return written


def run_relay(
    settings: Settings, database: Database, config: RelayConfig
) -> tuple[int, float, list[int], list[EventMessage]]:
    """Publish everything; returns the count, seconds, RSS samples and a sample of messages."""
    ledger = build_ledger(settings)
    relay = OutboxRelay(ledger, database, config)
    relay.ensure_topics()
    with RssSampler() as rss:
        started = time.perf_counter()
        published = relay.run(until_idle=True)
        relay.close()
        elapsed = time.perf_counter() - started
    first = ledger.recorder.select_notifications(None, 1)
    sample = [relay.encode(first[0])] if first else []
    ledger.close()
    return published, elapsed, rss.samples, sample


def encoded_messages(settings: Settings, config: RelayConfig) -> list[EventMessage]:
    """What the relay publishes, encoded ahead of time for the raw producer."""
    ledger = build_ledger(settings)
    database = Database(settings)
    relay = OutboxRelay(ledger, database, config, topic_creator=lambda t: None)
    messages: list[EventMessage] = []
    position = 0
    while True:
        batch = ledger.recorder.select_notifications(position, 5000, inclusive_of_start=False)
        if not batch:
            break
        messages.extend(relay.encode(n) for n in batch)
        position = batch[-1].id
    database.close()
    ledger.close()
    return messages


def run_raw(config: RelayConfig, messages: list[EventMessage], prefix: str) -> float:
    """Send ``messages`` (renamed to ``prefix``'s topics) with a bare producer; seconds."""
    old_prefix = messages[0].topic.rsplit(".", 1)[0]
    topics = {t: t.replace(old_prefix, prefix, 1) for t in {m.topic for m in messages}}
    create_topics(config.bootstrap_servers, sorted(set(topics.values())), config.partitions)
    producer = KafkaProducer(**config.producer_settings())
    started = time.perf_counter()
    for m in messages:
        producer.send(topics[m.topic], value=m.value, key=m.key, headers=m.headers)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()

    base = Settings().model_copy(update={"store": "postgres"})
    dbname = f"bench_relay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base.postgres_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    settings = base.model_copy(update={"postgres_dbname": dbname})
    try:
        events = fill_store(settings, args.events)
        print(f"store: {events} events in database {dbname}")
        database = Database(settings)
        messages: list[EventMessage] = []
        relay_rates, raw_rates = [], []
        for round_number in range(1, args.rounds + 1):
            run_id = uuid.uuid4().hex[:8]
            config = RelayConfig(
                bootstrap_servers=base.kafka_bootstrap_servers,
                topic_prefix=f"bench{run_id}",
                partitions=base.kafka_partitions,
                batch_size=args.batch_size,
            )
            published, seconds, rss, _ = run_relay(settings, database, config)
            relay_rates.append(published / seconds)
            mib = [s / 2**20 for s in rss]
            print(
                f"round {round_number} relay: {published} events in {seconds:.2f}s = "
                f"{published / seconds:,.0f} events/s; RSS start {mib[0]:.1f} MiB, "
                f"peak {max(mib):.1f} MiB, end {mib[-1]:.1f} MiB"
            )
            if not messages:
                messages = encoded_messages(settings, config)
                sizes = sorted(len(m.value) + sum(len(v) for _, v in m.headers) for m in messages)
                print(f"message size (value + headers): median {sizes[len(sizes) // 2]} bytes")
            seconds = run_raw(config, messages, f"benchraw{run_id}")
            raw_rates.append(len(messages) / seconds)
            print(
                f"round {round_number} raw producer: {len(messages)} messages in {seconds:.2f}s"
                f" = {len(messages) / seconds:,.0f} messages/s"
            )
        database.close()
        print(
            f"relay {max(relay_rates):,.0f} events/s vs raw {max(raw_rates):,.0f} messages/s:"
            f" ratio {max(relay_rates) / max(raw_rates):.2f}"
        )
    finally:
        with psycopg.connect(base.postgres_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
