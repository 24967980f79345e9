"""Self-verifying Kafka: with only the topics and the ledger's public key, a consumer
proves it received every event up to a signed checkpoint, unaltered; an altered or a
dropped message is rejected with the reason (real broker, own topic prefix)."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import pytest

from commands.ledger import SalesLedger
from services.cli import main
from services.database import Database
from services.kafka_verify import ConsumedMessage, consume_all
from services.relay import OutboxRelay, RelayConfig
from services.settings import Settings
from services.transparency.kafka import (
    CheckpointPublisher,
    reencoder,
    verify_stream,
)
from services.transparency.keys import create_signing_key, register_first_key
from services.transparency.offline import key_id, public_key_pem
from services.transparency.store import tree_store_for
from services.transparency.tree import TreeSealer
from tests.conftest import build_team, wait_for_read_horizon

pytestmark = pytest.mark.integration

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")


def test_a_consumer_proves_what_it_received_from_kafka_alone(
    sqlite_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"sv{uuid.uuid4().hex[:10]}"
    ledger = SalesLedger(env=sqlite_settings.event_store_env())
    build_team(ledger)
    customer = ledger.register_customer(name="Acme", source="web", actor="rep1")
    ledger.log_customer_activity(customer.aggregate_id, "call", "hello", actor="rep1")
    wait_for_read_horizon(ledger)
    key = create_signing_key(tmp_path / "key.pem")
    tree = tree_store_for(ledger.recorder)
    register_first_key(tree, key)
    head = TreeSealer(ledger.recorder, tree, key).seal()  # type: ignore[arg-type]
    assert head is not None
    database = Database(sqlite_settings)
    relay = OutboxRelay(ledger, database, RelayConfig(bootstrap_servers=BOOTSTRAP,
                                                     topic_prefix=prefix, partitions=2))
    relay.run(until_idle=True)
    relay.close()
    publisher = CheckpointPublisher(BOOTSTRAP, prefix)
    publisher.publish(head)
    publisher.close()
    (tmp_path / "public.pem").write_text(public_key_pem(key.public_key()))
    assert main(["subscribe", "--verify", "--public-key", str(tmp_path / "public.pem"),
                 "--bootstrap-servers", BOOTSTRAP, "--topic-prefix", prefix]) == 0
    assert f"all {head.tree_size} events" in capsys.readouterr().out

    settings = Settings(kafka_bootstrap_servers=BOOTSTRAP, kafka_topic_prefix=prefix)
    messages = list(consume_all(settings))
    keys = {key_id(key.public_key()): key.public_key()}
    reencode = reencoder(ledger.mapper, prefix)
    assert verify_stream(messages, head, keys, reencode).ok
    victim = max(range(len(messages)),
                 key=lambda i: int(dict(messages[i].headers)["ce_position"] or b"0"))
    altered = list(messages)
    value = messages[victim].value or b""
    altered[victim] = dataclasses.replace(messages[victim], value=value.replace(b'"', b"'", 1))
    check = verify_stream(altered, head, keys, reencode)
    assert not check.ok and "altered (the message differs from its stored form)" in check.summary()
    dropped: list[ConsumedMessage] = messages[:victim] + messages[victim + 1 :]
    check = verify_stream(dropped, head, keys, reencode)
    assert not check.ok and "messages are missing" in check.summary()
    other = create_signing_key(tmp_path / "other.pem")
    forged = verify_stream(messages, head, {key_id(other.public_key()): other.public_key()},
                           reencode)
    assert not forged.ok and "not by the ledger's key" in forged.summary()
    database.close()
    ledger.close()
