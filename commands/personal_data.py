"""Personal fields stored encrypted under a key per data subject (crypto-shredding).

``PersonalDataMapper`` wraps each personal field of an event (``events.personal``) as a
``PersonalValue`` before the transcoder encodes it; ``PersonalDataTranscoding`` encrypts
it there with AES-256-GCM under the subject's key and, when events are read (by the
mapper or by the projections' decoder, which both use the transcoder), decrypts it, or
gives ``ERASED`` once the key is destroyed. Keys live in the ``SubjectKeyStore`` port,
outside the events, so the chains keep hashing the same ciphertext after an erasure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from uuid import UUID, uuid4

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder, Transcoding
from eventsourcing.utils import get_topic

from aggregates.errors import RuleViolationError
from events.personal import (
    ERASED,
    ERASED_MAPPING,
    PERSONAL_TYPE,
    is_personal_value,
    personal_fields_of,
)

CLAIMS_SUBJECT = "ledger:claims"
"""The key table's row whose key makes the uniqueness claims' keyed digests; never erased."""

RESERVED_SUBJECTS = 64
"""New subject ids (with their keys) a process stores at once, for the customers it is
about to register: a registration then makes no round trip to the key table."""

KEY_CACHE_SECONDS = 2.0
"""How long a process reuses a subject key it read, before asking the store again (a
key another process destroyed is unreadable here after at most this long; the erasing
process forgets it at once)."""

NO_KEY = "[no key]"
"""What a personal text reads as when the key table has no row for its subject at all
(a database restored without its key table: see docs/erasure.md)."""


@runtime_checkable
class SubjectKeyStore(Protocol):
    """The key table: one 32-byte AES key per data subject; a destroyed key leaves a
    tombstone, so "erased" stays distinguishable from "never had a key"."""

    def select_subject_key(self, subject: str) -> bytes | None:
        """The subject's key; ``b""`` if it was destroyed; None if there is none."""
        ...

    def insert_subject_key(self, subject: str, key: bytes) -> bytes:
        """Record ``key`` for ``subject`` unless it has one; the key it now has
        (``b""`` if the subject was erased)."""
        ...

    def insert_subject_keys(self, keys: Sequence[tuple[str, bytes]]) -> None:
        """Record keys for new subjects (ids no event names yet), all at once."""
        ...

    def destroy_subject_key(self, subject: str) -> None:
        """Destroy the subject's key for good, leaving the tombstone."""
        ...

    def erased_subjects(self) -> list[str]:
        """Every subject whose key was destroyed."""
        ...


class InMemorySubjectKeys:
    """A key table in memory: for stores without one (the library's POPO store) and tests."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def select_subject_key(self, subject: str) -> bytes | None:
        return self.keys.get(subject)

    def insert_subject_key(self, subject: str, key: bytes) -> bytes:
        return self.keys.setdefault(subject, key)

    def insert_subject_keys(self, keys: Sequence[tuple[str, bytes]]) -> None:
        for subject, key in keys:
            self.keys.setdefault(subject, key)

    def destroy_subject_key(self, subject: str) -> None:
        self.keys[subject] = b""

    def erased_subjects(self) -> list[str]:
        return sorted(s for s, key in self.keys.items() if not key)


class SubjectErasedError(RuleViolationError):
    """New personal data for a data subject that was erased."""

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"the personal data of {subject} was erased; it takes no new personal data"
        )


@dataclass(frozen=True)
class PersonalValue:
    """A personal field's value on its way to the store, with its data subject."""

    subject: str
    value: Any


class SubjectKeys:
    """Subject keys from the store, kept for ``KEY_CACHE_SECONDS``; made on first use."""

    def __init__(self, store: Callable[[], SubjectKeyStore]) -> None:
        self._find_store = store
        self._store: SubjectKeyStore | None = None
        self._cache: dict[str, tuple[bytes | None, float]] = {}
        self._lock = threading.Lock()
        self._reserved: list[UUID] = []
        self._reserved_keys: dict[str, bytes] = {}

    @property
    def store(self) -> SubjectKeyStore:
        """The key table (found on first use: the recorder is made after the mapper)."""
        if self._store is None:
            self._store = self._find_store()
        return self._store

    def new_subject(self) -> UUID:
        """An id for a new data subject, whose key is already stored."""
        with self._lock:
            if not self._reserved:
                reserved = [
                    (uuid4(), AESGCM.generate_key(bit_length=256)) for _ in range(RESERVED_SUBJECTS)
                ]
                self.store.insert_subject_keys([(str(u), key) for u, key in reserved])
                self._reserved = [u for u, _ in reversed(reserved)]
                self._reserved_keys.update((str(u), key) for u, key in reserved)
            return self._reserved.pop()

    def key(self, subject: str) -> bytes | None:
        """The subject's key for reading: ``b""`` if destroyed, None if there is none."""
        reserved = self._reserved_keys.pop(subject, None)
        if reserved is not None:
            with self._lock:
                self._cache[subject] = (reserved, time.monotonic())
            return reserved
        now = time.monotonic()
        cached = self._cache.get(subject)
        if cached is not None and (cached[0] == b"" or now - cached[1] < KEY_CACHE_SECONDS):
            return cached[0]
        key = self.store.select_subject_key(subject)
        if key is not None:
            with self._lock:
                self._cache[subject] = (key, now)
        return key

    def key_for_writing(self, subject: str) -> bytes:
        """The subject's key, made now if it has none; refused if it was erased."""
        key = self.key(subject)
        if key is None:
            key = self.store.insert_subject_key(subject, AESGCM.generate_key(bit_length=256))
            with self._lock:
                self._cache[subject] = (key, time.monotonic())
        if not key:
            raise SubjectErasedError(subject)
        return key

    @contextmanager
    def preloaded(self, keys: Mapping[str, bytes]) -> Iterator[None]:
        """Read with ``keys``, which the caller read in bulk, as if each had just been read
        from the store; forgotten afterwards, so that a pass over every customer (the
        claims check of ``verify``) neither asks for each key alone nor keeps them all."""
        now = time.monotonic()
        with self._lock:
            added = [subject for subject in keys if subject not in self._cache]
            self._cache.update((subject, (keys[subject], now)) for subject in added)
        try:
            yield
        finally:
            with self._lock:
                for subject in added:
                    self._cache.pop(subject, None)

    def destroy(self, subject: str) -> None:
        """Destroy the subject's key in the store and forget it here."""
        self.store.destroy_subject_key(subject)
        with self._lock:
            self._cache[subject] = (b"", time.monotonic())

    def claim_digest(self, kind: str, value: str) -> str:
        """The keyed digest (HMAC-SHA-256, hex) a uniqueness claim records instead of the
        normalised value itself."""
        return keyed_claim(self.key_for_writing(CLAIMS_SUBJECT), kind, value)


def keyed_claim(key: bytes, kind: str, value: str) -> str:
    """The uniqueness claim of a normalised ``value`` of ``kind`` under the claims key:
    what ``SubjectKeys.claim_digest`` records and what ``verify`` recomputes."""
    digest = hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"customer:{kind}:{digest}"


class PersonalDataTranscoding(Transcoding):
    """Encrypts a ``PersonalValue`` under its subject's key (AES-256-GCM, the subject as
    associated data); decrypts it when read, or gives ``ERASED`` (``ERASED_MAPPING`` for
    a mapping) once the key is destroyed."""

    type = PersonalValue
    name = PERSONAL_TYPE

    def __init__(self, keys: SubjectKeys, transcoder: Transcoder) -> None:
        self.keys = keys
        self.transcoder = transcoder

    def encode(self, obj: PersonalValue) -> dict[str, Any]:
        key = self.keys.key_for_writing(obj.subject)
        nonce = os.urandom(12)
        value = obj.value
        plaintext = orjson.dumps(value) if type(value) is str else self.transcoder.encode(value)
        ciphertext = AESGCM(key).encrypt(nonce, plaintext, obj.subject.encode())
        return {
            "subject": obj.subject,
            "ciphertext": base64.b64encode(nonce + ciphertext).decode(),
            "shape": "mapping" if isinstance(obj.value, dict) else "text",
        }

    def decode(self, data: dict[str, Any]) -> Any:
        subject = data["subject"]
        key = self.keys.key(subject)
        if not key:
            return _unreadable(data.get("shape"), ERASED if key == b"" else NO_KEY)
        sealed = base64.b64decode(data["ciphertext"])
        try:
            plaintext = AESGCM(key).decrypt(sealed[:12], sealed[12:], subject.encode())
        except InvalidTag:
            raise ValueError(f"personal data of {subject} does not match its key") from None
        return self.transcoder.decode(plaintext)


def _unreadable(shape: Any, text: str) -> Any:
    if shape == "mapping":
        return dict(ERASED_MAPPING) if text == ERASED else {"erased": text}
    return text


class PersonalDataMapper(Mapper[Any]):
    """A mapper that stores every personal field (``events.personal.PERSONAL_FIELDS``)
    as a ``PersonalValue`` of the event's aggregate, for ``PersonalDataTranscoding``."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        fields = personal_fields_of(type(domain_event))
        if not fields:
            return super().to_stored_event(domain_event)
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        subject = str(originator_id)
        for field in fields:
            if is_personal_value(event_state.get(field)):
                event_state[field] = PersonalValue(subject, event_state[field])
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(type(domain_event)),
            state=stored_state,
        )


def subject_keys_of(recorder: Any, fallback: InMemorySubjectKeys) -> SubjectKeyStore:
    """The recorder as the key table if it is one (``services.subject_keys``), else
    ``fallback``."""
    return recorder if isinstance(recorder, SubjectKeyStore) else fallback
