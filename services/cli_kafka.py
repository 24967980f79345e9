"""Kafka subcommands: ``relay`` (publish every event) and ``subscribe`` (example consumer)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from services.bootstrap import build_ledger, until_reachable
from services.database import Database
from services.relay import BrokerLimitError, OutboxRelay, RelayConfig
from services.settings import Settings
from services.subscriber import FunnelSubscriber, funnel_table
from services.worker_health import report_health


def register(subparsers: Any) -> None:
    settings = Settings()
    relay = subparsers.add_parser(
        "relay", help="publish every stored event to Kafka, in order, exactly once"
    )
    _add_broker_options(relay, settings)
    relay.add_argument("--partitions", type=int, default=settings.kafka_partitions)
    relay.add_argument("--replication-factor", type=int, default=1)
    relay.add_argument("--batch-size", type=int, default=2000, help="events per flush")
    relay.add_argument("--flush-timeout", type=float, default=30.0, help="seconds")
    relay.add_argument("--max-backoff", type=float, default=10.0, help="seconds")
    relay.add_argument("--name", default="", help="position key (default kafka:PREFIX)")
    relay.add_argument(
        "--at-least-once",
        action="store_true",
        help="no Kafka transactions (for brokers without them); consumers dedupe by ce_id",
    )
    relay.add_argument("--until-idle", action="store_true", help="exit once caught up")
    relay.set_defaults(handler=_relay)

    subscribe = subparsers.add_parser(
        "subscribe", help="example consumer: rebuild the funnel from Kafka alone"
    )
    _add_broker_options(subscribe, settings)
    subscribe.add_argument("--group", default="salesledger-funnel", help="consumer group")
    subscribe.add_argument("--state", type=Path, default=None, help="file keeping the fold")
    subscribe.add_argument(
        "--idle-exit", type=float, default=None, help="exit after N seconds without messages"
    )
    subscribe.add_argument("--json", action="store_true", help="print the funnel as JSON")
    subscribe.set_defaults(handler=_subscribe)


def _add_broker_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("--bootstrap-servers", default=settings.kafka_bootstrap_servers)
    parser.add_argument("--topic-prefix", default=settings.kafka_topic_prefix)
    parser.add_argument("-v", "--verbose", action="store_true")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.INFO if verbose else logging.ERROR)


def _relay(args: argparse.Namespace) -> int:
    _configure_logging(args.verbose)
    settings = Settings()
    config = RelayConfig(
        bootstrap_servers=args.bootstrap_servers,
        topic_prefix=args.topic_prefix,
        partitions=args.partitions,
        replication_factor=args.replication_factor,
        batch_size=args.batch_size,
        flush_timeout=args.flush_timeout,
        max_backoff=args.max_backoff,
        relay_name=args.name,
        exactly_once=not args.at_least_once,
    )
    database = Database(settings)
    ledger = until_reachable(lambda: build_ledger(settings), "the event store")
    relay = until_reachable(lambda: OutboxRelay(ledger, database, config), "the database")
    health = report_health(settings.health_file, "relay", lambda: relay.position)
    try:
        published = relay.run(_stop_on_signals(), until_idle=args.until_idle)
    except BrokerLimitError as error:
        logging.error("relay %s refuses to start: %s", config.name, error)
        return 2
    finally:
        health.stop()
        relay.close()
        database.close()
    logging.info("relay %s stopped at position %d (%d published)", config.name,
                 relay.position, published)
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    _configure_logging(args.verbose)
    subscriber = FunnelSubscriber(
        args.bootstrap_servers, args.topic_prefix, args.group, state_path=args.state
    )
    try:
        fold = subscriber.run(_stop_on_signals(), idle_timeout=args.idle_exit)
    finally:
        subscriber.close()
    funnel = fold.funnel()
    if args.json:
        print(json.dumps({
            "funnel": [
                {"stage": stage, "status": status, "count": cell.count, "amount": str(cell.amount)}
                for (stage, status), cell in funnel.items()
            ],
            "consumed": subscriber.consumed,
            "duplicates": fold.duplicates,
            "gaps": [vars(gap) for gap in fold.gaps],
        }))
    else:
        print(funnel_table(funnel))
        print(f"consumed {subscriber.consumed}, duplicates {fold.duplicates}, "
              f"gaps {len(fold.gaps)}")
    return 1 if fold.gaps else 0
