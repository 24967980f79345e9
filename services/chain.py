"""The canonical encoding of stored events and the two hash chains built on it.

An event's hash chains it to the previous event of the same aggregate::

    hash(v) = sha256(hash(v - 1) || uuid(16 bytes) || version (int8, big-endian)
                     || len(topic) (int4, big-endian) || topic (UTF-8) || state)

with ``hash(0)`` = 32 zero bytes (``GENESIS``). Every field has a fixed length or a
length prefix except ``state``, which comes last, so two different events never share
an encoding. The PostgreSQL append function computes exactly the same bytes with
``sha256(prev || uuid_send(id) || int8send(version) || int4send(octet_length(topic))
|| convert_to(topic, 'UTF8') || state)``.

The ledger-wide chain runs over the global order (the notification log)::

    link(p) = sha256(link(previous position) || position (int8, big-endian) || hash)

so removing, inserting or reordering events anywhere changes every later link.

The event hash itself is defined in ``services.transparency.offline`` (the auditor's
module), so the auditor reads the very function the ledger uses.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from services.transparency.offline import GENESIS, HASH_SIZE, canonical_encoding, event_hash

__all__ = [
    "GENESIS", "HASH_SIZE", "ChainRow", "ChainStore", "ChainedRecord", "Seal", "canonical_encoding",
    "event_hash", "ledger_link", "pack_positions", "row_event_hash", "split_hashes",
    "unpack_positions",
]

_INT8 = struct.Struct(">q")
_VERSION_AND_TOPIC_LENGTH = struct.Struct(">qi")

ChainRow = tuple[int, bytes, int, bytes, bytes, bytes | None]
"""A stored event as the range verifier reads it, in the database's binary format:
(position, aggregate id as its 16 bytes, version, topic as UTF-8, state, stored hash)."""


def ledger_link(previous_link: bytes, position: int, hash_: bytes) -> bytes:
    """The next link of the ledger-wide chain: the event at ``position`` with ``hash_``."""
    return hashlib.sha256(previous_link + _INT8.pack(position) + hash_).digest()


def row_event_hash(
    previous: bytes, originator_id: bytes, version: int, topic: bytes, state: bytes
) -> bytes:
    """``event_hash`` of an event given as raw bytes (a ``ChainRow``'s id and topic), the
    same encoding built without a ``UUID`` or a ``str`` per event."""
    return hashlib.sha256(
        b"".join((previous, originator_id, _VERSION_AND_TOPIC_LENGTH.pack(version, len(topic)),
                  topic, state))
    ).digest()


def pack_positions(positions: list[int]) -> bytes:
    """Positions as consecutive int8 values (how a seal stores them)."""
    return struct.pack(f">{len(positions)}q", *positions)


def unpack_positions(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 8}q", data))


def split_hashes(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


@dataclass(frozen=True)
class ChainedRecord:
    """A stored event as the chains see it: its position, identity, content and hash."""

    position: int
    originator_id: UUID
    version: int
    topic: str
    state: bytes
    hash: bytes | None


@dataclass(frozen=True)
class Seal:
    """A sealed stretch of the notification log: positions ``after_position + 1 ..
    upto_position`` that existed then, their event hashes, and the ledger link at
    ``upto_position``. Seals chain too: each starts where the previous one ended."""

    after_position: int
    upto_position: int
    positions: list[int]
    event_hashes: list[bytes]
    ledger_hash: bytes
    sealed_at: str = ""


class ChainStore(Protocol):
    """What the chains need from a recorder (both ledger recorders provide it)."""

    def horizon_position(self) -> int: ...

    def select_chained(self, after: int, upto: int, limit: int) -> list[ChainedRecord]: ...

    def select_chain_rows(self, after: int, upto: int, limit: int) -> list[ChainRow]: ...

    def select_aggregate_chain(self, originator_id: UUID) -> list[ChainedRecord]: ...

    def select_hashes(
        self, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], bytes | None]: ...

    def select_seals(self, after: int = 0, upto: int | None = None) -> list[Seal]: ...

    def last_seal(self, upto: int | None = None) -> Seal | None: ...

    def select_sealed_hashes(
        self, positions: Sequence[int]
    ) -> tuple[int, dict[int, bytes]]: ...

    def insert_seal(self, seal: Seal) -> bool: ...
