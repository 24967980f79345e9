"""Personal fields under a key per data subject: the mapper, the cipher, the decoder and
the wire format, with a key table in memory (no server)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Notification,
    StoredEvent,
    UUIDAsHex,
)

from commands.personal_data import (
    CLAIMS_SUBJECT,
    InMemorySubjectKeys,
    PersonalDataMapper,
    PersonalDataTranscoding,
    SubjectErasedError,
    SubjectKeys,
)
from events.base import DateAsISO
from events.customer import ActivityLogged, CustomerRegistered
from events.messages import StoredForm, decode_message, encode_event
from events.personal import ERASED, ERASED_MAPPING, PERSONAL_FIELDS
from projections.decoding import NotificationDecoder
from schemas.generate import event_schema

NAME, PHONE, EMAIL = "Li Na Consulting", "+86 139 1234 5678", "li.na@example.cn"


class RecordingKeys(InMemorySubjectKeys):
    """The in-memory key table, noting every read (to see the cache at work)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def select_subject_key(self, subject: str) -> bytes | None:
        self.reads.append(subject)
        return super().select_subject_key(subject)


def mapper_with(store: InMemorySubjectKeys) -> tuple[PersonalDataMapper, SubjectKeys]:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    keys = SubjectKeys(lambda: store)
    transcoder.register(PersonalDataTranscoding(keys, transcoder))
    return PersonalDataMapper(transcoder=transcoder), keys


def registered(profile: dict[str, Any] | None = None, email: str | None = EMAIL) -> Any:
    return CustomerRegistered(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=CustomerRegistered.create_timestamp(),
        originator_topic="aggregates.customer:Customer",
        name=NAME,
        source="web",
        tax_id=None,
        phone=PHONE,
        email=email,
        owner_id="rep1",
        profile={"address": "1 Huaihai Road"} if profile is None else profile,
        actor="rep1",
    )


def test_personal_fields_are_stored_encrypted_and_read_back() -> None:
    store = InMemorySubjectKeys()
    mapper, _ = mapper_with(store)
    event = registered()
    stored = mapper.to_stored_event(event)
    for text in (NAME, PHONE, EMAIL, "Huaihai"):
        assert text.encode() not in stored.state
    state = json.loads(stored.state)
    assert state["name"]["_type_"] == "personal"
    assert state["name"]["_data_"]["subject"] == str(event.originator_id)
    assert state["owner_id"] == "rep1" and state["tax_id"] is None  # business facts, empty ones
    assert vars(mapper.to_domain_event(stored)) == vars(event)


def test_a_destroyed_key_erases_every_personal_field_and_nothing_else() -> None:
    store = InMemorySubjectKeys()
    mapper, keys = mapper_with(store)
    event = registered()
    stored = mapper.to_stored_event(event)
    keys.destroy(str(event.originator_id))
    read = mapper.to_domain_event(stored)
    assert (read.name, read.phone, read.email) == (ERASED, ERASED, ERASED)  # type: ignore[attr-defined]
    assert read.profile == ERASED_MAPPING  # type: ignore[attr-defined]
    assert read.owner_id == "rep1" and read.source == "web"  # type: ignore[attr-defined]
    assert store.erased_subjects() == [str(event.originator_id)]
    with pytest.raises(SubjectErasedError):
        mapper.to_stored_event(CustomerRegistered(**{**vars(event), "originator_version": 2}))


def test_each_subject_has_its_own_key_and_the_ciphertext_is_bound_to_it() -> None:
    store = InMemorySubjectKeys()
    mapper, _ = mapper_with(store)
    first, second = registered(), registered()
    stored_first, stored_second = mapper.to_stored_event(first), mapper.to_stored_event(second)
    assert store.keys[str(first.originator_id)] != store.keys[str(second.originator_id)]
    moved = json.loads(stored_first.state)
    moved["name"]["_data_"]["subject"] = str(second.originator_id)  # another subject's key
    forged = StoredEvent(
        originator_id=stored_second.originator_id,
        originator_version=1,
        topic=stored_first.topic,
        state=json.dumps(moved).encode(),
    )
    with pytest.raises(ValueError, match="does not match its key"):
        mapper.to_domain_event(forged)


def test_keys_are_read_once_and_an_erasure_is_never_forgotten() -> None:
    store = RecordingKeys()
    mapper, keys = mapper_with(store)
    event = registered()
    stored = mapper.to_stored_event(event)
    store.reads.clear()
    for _ in range(3):
        mapper.to_domain_event(stored)
    assert len(store.reads) <= 1
    keys.destroy(str(event.originator_id))
    store.keys[str(event.originator_id)] = b"k" * 32  # a stale copy elsewhere is not used here
    assert mapper.to_domain_event(stored).name == ERASED  # type: ignore[attr-defined]


def test_claim_digests_are_keyed_and_stable() -> None:
    _, keys = mapper_with(InMemorySubjectKeys())
    _, other_keys = mapper_with(InMemorySubjectKeys())
    digest = keys.claim_digest("email", EMAIL)
    assert digest == keys.claim_digest("email", EMAIL)
    assert digest.startswith("customer:email:") and EMAIL not in digest
    assert digest != other_keys.claim_digest("email", EMAIL)  # another ledger, another key
    assert keys.store.select_subject_key(CLAIMS_SUBJECT)


def test_the_projection_decoder_decrypts_and_keeps_no_ciphertext_as_changes() -> None:
    mapper, keys = mapper_with(InMemorySubjectKeys())
    event = registered()
    stored = mapper.to_stored_event(event)
    notification = Notification(
        id=1,
        originator_id=stored.originator_id,
        originator_version=1,
        topic=stored.topic,
        state=stored.state,
    )
    decoded = NotificationDecoder(mapper)(notification)
    assert vars(decoded.event) == vars(event) and decoded.state is None
    keys.destroy(str(event.originator_id))
    assert NotificationDecoder(mapper)(notification).event.name == ERASED


def test_messages_carry_personal_fields_only_encrypted() -> None:
    mapper, _ = mapper_with(InMemorySubjectKeys())
    event = registered(email=None)
    stored = mapper.to_stored_event(event)
    form = StoredForm(stored.topic, stored.state, b"\x00" * 32)
    for message in (
        encode_event(event, 7, topic_prefix="sales", stored=form),
        encode_event(event, 7, topic_prefix="sales", stored_state=stored.state),
        encode_event(event, 7, topic_prefix="sales"),
    ):
        for text in (NAME, PHONE, "Huaihai"):
            assert text.encode() not in message.value
        data = decode_message(message.headers, message.value).data
        assert data["email"] is None and data["owner_id"] == "rep1"
        assert data["name"]["subject"] == str(event.originator_id)
    plain = encode_event(event, 7, topic_prefix="sales", stored=form)
    assert (
        json.loads(plain.value)["name"]["ciphertext"]
        == json.loads(stored.state)["name"]["_data_"]["ciphertext"]
    )
    assert json.loads(encode_event(event, 7, topic_prefix="sales").value)["name"] == {
        "subject": str(event.originator_id),
        "ciphertext": None,
    }


def test_every_personal_field_is_declared_in_the_published_schema() -> None:
    for event_class, fields in PERSONAL_FIELDS.items():
        properties = event_schema(event_class)["properties"]
        for field in fields:
            assert properties[field]["x-personal"] is True, (event_class, field)
    assert "x-personal" not in event_schema(ActivityLogged)["properties"]["kind"]


def test_the_uuid_of_a_subject_is_its_customer_id() -> None:
    mapper, _ = mapper_with(InMemorySubjectKeys())
    event = registered()
    subject = json.loads(mapper.to_stored_event(event).state)["phone"]["_data_"]["subject"]
    assert UUID(subject) == event.originator_id
