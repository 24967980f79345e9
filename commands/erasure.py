"""Erasing a customer's personal data: destroy its key, then record the receipt.

The key goes first: once it is destroyed every personal field of the customer's events
reads as erased, wherever they are (the store, its backups, Kafka). The receipt
(``PersonalDataErased``: who, when, why) is appended after; if that append fails,
running the command again finds the key gone and appends the receipt.
"""

from __future__ import annotations

from collections.abc import Callable

from aggregates.customer import Customer
from aggregates.organisation import Organisation
from commands.personal_data import SubjectKeys


def erasure(keys: SubjectKeys, reason: str, actor: str) -> Callable[[Customer, Organisation], None]:
    """The change that erases a customer: the aggregate checks who and why and records
    the receipt; then the customer's key is destroyed (before the receipt is stored)."""

    def erase(customer: Customer, org: Organisation) -> None:
        customer.erase_personal_data(reason, actor, org)
        keys.destroy(str(customer.id))

    return erase
