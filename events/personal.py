"""Personal data in events: which fields hold it, and how it is stored and published.

A personal field is stored encrypted under the key of its data subject (the customer
the event is about), so that destroying that one key erases it from every event at
once while the events' bytes, and so the hash chains, stay as they are
(``docs/erasure.md``). The stored form of a personal value is a transcoded object::

    {"_type_": "personal",
     "_data_": {"subject": "<customer id>", "ciphertext": "<base64>", "shape": "text"}}

and Kafka messages carry its subject and ciphertext (``published_personal_value``),
never the plaintext. Pure: no keys and no cryptography here.
"""

from __future__ import annotations

from typing import Any

from events.customer import ActivityLogged, CustomerRegistered, ProfileSupplemented

PERSONAL_FIELDS: dict[type, tuple[str, ...]] = {
    CustomerRegistered: ("name", "tax_id", "phone", "email", "profile"),
    ProfileSupplemented: ("changes",),
    ActivityLogged: ("summary",),
}
"""Event class → its fields that hold personal data of the customer the event is about
(the event's aggregate: its originator id is the data subject)."""

PERSONAL_TYPE = "personal"
"""The transcoding name of a stored personal value."""

ERASED = "[erased]"
"""What a personal text reads as once its subject's key is destroyed."""

ERASED_MAPPING: dict[str, Any] = {"erased": ERASED}
"""What a personal mapping (a profile) reads as once its subject's key is destroyed."""

PUBLISHED_PERSONAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "Personal data, encrypted (AES-256-GCM) under the data subject's key, which never "
        "leaves the ledger; unreadable for good once the subject is erased."
    ),
    "properties": {
        "subject": {"type": "string", "description": "The data subject: the customer id."},
        "ciphertext": {
            "type": ["string", "null"],
            "description": "base64 of nonce (12 bytes) + ciphertext + tag; null when withheld",
        },
    },
    "required": ["subject", "ciphertext"],
    "additionalProperties": False,
}
"""The JSON Schema of a personal field's value in a published message."""


def personal_fields_of(event_class: type) -> tuple[str, ...]:
    """The personal fields of ``event_class`` (none for most events)."""
    return PERSONAL_FIELDS.get(event_class, ())


def is_personal_value(value: Any) -> bool:
    """Whether ``value`` is worth encrypting: personal fields left empty stay as they are."""
    return value is not None and value != "" and value != {}


def published_personal_value(subject: str, value: Any, stored_value: Any) -> Any:
    """A personal field's value in a Kafka message: its encrypted stored form
    (``stored_value``, from the stored state) if it has one; an empty value as it is;
    anything else withheld (the subject alone, no ciphertext)."""
    if isinstance(stored_value, dict) and stored_value.get("_type_") == PERSONAL_TYPE:
        data = stored_value["_data_"]
        return {"subject": data["subject"], "ciphertext": data["ciphertext"]}
    if not is_personal_value(value):
        return value
    return {"subject": subject, "ciphertext": None}
