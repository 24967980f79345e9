"""Self-verifying Kafka: signed heads on ``{prefix}.checkpoints``, and a check that the
messages received prove every event up to a head, unaltered — from Kafka and the public
key alone.

Each message carries its position, chain hash and stored form (``events.messages``). The
check recomputes every hash from the stored form along each aggregate's chain, re-encodes
the message from the stored form and compares it with the one received, then rebuilds the
Merkle tree over the hashes in position order and compares it with the signed head.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from events.messages import (
    CHECKPOINT_TOPIC,
    EVENT_HASH_HEADER,
    LEDGER_POSITION_HEADER,
    STORED_STATE_HEADER,
    STORED_TOPIC_HEADER,
    EventMessage,
    encode_event,
    topic_name,
)
from services.kafka_verify import ConsumedMessage
from services.transparency.offline import (
    GENESIS,
    ProofError,
    SignedTreeHead,
    event_hash,
    key_id,
    load_public_key,
    tree_hash,
    verify_head,
)

Reencode = Callable[[StoredEvent, int], EventMessage]
COMPARED_HEADERS = ("ce_id", "ce_type", "ce_subject", "ce_aggregateversion", "ce_position",
                    "ce_time")


def checkpoint_message(head: SignedTreeHead, prefix: str) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of the message that publishes a signed head."""
    value = json.dumps(asdict(head), separators=(",", ":")).encode()
    return topic_name(prefix, CHECKPOINT_TOPIC), str(head.tree_size).encode(), value


def reencoder(mapper: Any, topic_prefix: str) -> Reencode:
    """Rebuilds a message from a stored form with the ledger's own mapper and encoder."""
    def reencode(stored: StoredEvent, position: int) -> EventMessage:
        return encode_event(
            mapper.to_domain_event(stored), position, topic_prefix=topic_prefix,
            stored_state=stored.state,
        )
    return reencode


@dataclass
class StreamCheck:
    """What the messages prove about a signed head: ``problems`` empty means all of it."""

    tree_size: int = 0
    last_position: int = 0
    received: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"kafka: all {self.received} events up to position {self.last_position} "
                    f"received unaltered; they form the signed tree of size {self.tree_size}")
        return "kafka: REJECTED: " + "; ".join(self.problems[:5]) + (
            f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else "")


@dataclass(frozen=True)
class _Received:
    position: int
    aggregate_id: UUID
    version: int
    event_hash: bytes
    stored: StoredEvent
    message: ConsumedMessage


def _parse(message: ConsumedMessage) -> _Received:
    headers = {name: (raw or b"").decode() for name, raw in message.headers}
    try:
        aggregate_id = UUID(headers["ce_subject"])
        version = int(headers["ce_aggregateversion"])
        stored = StoredEvent(aggregate_id, version, headers[STORED_TOPIC_HEADER],
                             base64.b64decode(headers[STORED_STATE_HEADER], validate=True))
        return _Received(int(headers[LEDGER_POSITION_HEADER]), aggregate_id, version,
                         bytes.fromhex(headers[EVENT_HASH_HEADER]), stored, message)
    except (KeyError, ValueError) as error:
        raise ProofError(f"{message.topic}[{message.partition}]@{message.offset} is not a "
                         f"self-verifying ledger message ({error})") from None


def verify_stream(
    messages: Iterable[ConsumedMessage], head: SignedTreeHead, keys: dict[str, Any],
    reencode: Reencode,
) -> StreamCheck:
    """Check the event messages against the signed ``head`` (see the module docstring)."""
    check = StreamCheck(tree_size=head.tree_size, last_position=head.last_position)
    try:
        verify_head(head, keys)
    except ProofError as error:
        check.problems.append(str(error))
        return check
    received: dict[int, _Received] = {}
    for message in messages:
        try:
            item = _parse(message)
        except ProofError as error:
            check.problems.append(str(error))
            continue
        if item.position > head.last_position:
            continue
        earlier = received.get(item.position)
        if earlier is not None and earlier.message.value != message.value:
            check.problems.append(f"two different messages claim position {item.position}")
        received[item.position] = item
    check.received = len(received)
    _check_chains(received, check)
    _check_messages(received, reencode, check)
    hashes = [received[p].event_hash for p in sorted(received)]
    if len(hashes) != head.tree_size:
        check.problems.append(f"{len(hashes)} of the head's {head.tree_size} events were "
                              "received: messages are missing")
    elif tree_hash(hashes) != head.root_bytes:
        check.problems.append("the received events do not form the signed tree")
    return check


def _check_chains(received: dict[int, _Received], check: StreamCheck) -> None:
    by_aggregate: dict[UUID, list[_Received]] = {}
    for item in received.values():
        by_aggregate.setdefault(item.aggregate_id, []).append(item)
    for aggregate_id, items in by_aggregate.items():
        previous, expected = GENESIS, 1
        for item in sorted(items, key=lambda i: i.version):
            if item.version != expected:
                check.problems.append(f"aggregate {aggregate_id}: version {expected} is "
                                      f"missing (next received: {item.version})")
                break
            computed = event_hash(previous, aggregate_id, item.version, item.stored.topic,
                                  item.stored.state)
            if computed != item.event_hash:
                check.problems.append(f"position {item.position}: altered (the stored form "
                                      "does not match the event hash)")
                break
            previous, expected = computed, expected + 1


def _check_messages(
    received: dict[int, _Received], reencode: Reencode, check: StreamCheck
) -> None:
    for position in sorted(received):
        item = received[position]
        try:
            wanted = reencode(item.stored, position)
        except Exception as error:  # noqa: BLE001 - any decoding failure is a finding
            check.problems.append(f"position {position}: the stored form does not decode "
                                  f"({type(error).__name__})")
            continue
        headers, wanted_headers = dict(item.message.headers), dict(wanted.headers)
        same = all(headers.get(name) == wanted_headers[name] for name in COMPARED_HEADERS)
        if item.message.value != wanted.value or item.message.topic != wanted.topic or not same:
            check.problems.append(f"position {position}: altered (the message differs from "
                                  "its stored form)")


def latest_checkpoint(messages: Iterable[ConsumedMessage]) -> SignedTreeHead | None:
    """The largest signed head among checkpoint messages (each is checked when used)."""
    heads = []
    for message in messages:
        try:
            heads.append(SignedTreeHead.from_json(json.loads(message.value or b"")))
        except (ProofError, ValueError):
            continue
    return max(heads, key=lambda h: h.tree_size, default=None)


class CheckpointPublisher:
    """Publishes signed heads on ``{prefix}.checkpoints`` (``salesledger seal --checkpoints``)."""

    def __init__(self, bootstrap_servers: str, prefix: str) -> None:
        from kafka import KafkaProducer

        self.prefix = prefix
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers.split(","), acks="all")

    def publish(self, head: SignedTreeHead) -> None:
        topic, key, value = checkpoint_message(head, self.prefix)
        self.producer.send(topic, key=key, value=value).get(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=5)


def verify_from_kafka(
    bootstrap_servers: str, prefix: str, keys: dict[str, Any], reencode: Reencode
) -> StreamCheck:
    """Read the checkpoints and every event message; check them against the latest head."""
    from events.messages import AGGREGATE_TYPES
    from services.kafka_verify import consume_all
    from services.settings import Settings

    settings = Settings(kafka_bootstrap_servers=bootstrap_servers, kafka_topic_prefix=prefix)
    head = latest_checkpoint(
        consume_all(settings, topics=[topic_name(prefix, CHECKPOINT_TOPIC)])
    )
    if head is None:
        return StreamCheck(problems=[f"no signed head on {topic_name(prefix, CHECKPOINT_TOPIC)}"])
    topics = [topic_name(prefix, a) for a in AGGREGATE_TYPES]
    return verify_stream(consume_all(settings, topics=topics), head, keys, reencode)


def verify_with_public_key(bootstrap_servers: str, prefix: str, public_key: Path) -> StreamCheck:
    """``verify_from_kafka`` with the PEM key in ``public_key`` and the ledger's own decoder
    (an in-memory application: no database is opened)."""
    from commands.ledger import SalesLedger

    key = load_public_key(public_key.read_bytes())
    mapper = SalesLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    return verify_from_kafka(bootstrap_servers, prefix, {key_id(key): key},
                             reencoder(mapper, prefix))
