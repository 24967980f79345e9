"""Searching the customer list: the trigrams of a name (fuzzy search) and the keys a
search text is compared with, normalised as the uniqueness check normalises them
(``aggregates.customer.uniqueness_keys``), a phone number with its tails.
"""

from __future__ import annotations

import re
from typing import Any

from aggregates.customer import uniqueness_keys
from aggregates.field_rules import normalise_phone

GRAM_SIZE = 3


def name_grams(key: str) -> set[str]:
    """The trigrams of a normalised name, padded so that short names have some."""
    padded = f"  {key} "
    return {padded[i : i + GRAM_SIZE] for i in range(len(padded) - GRAM_SIZE + 1)}


def phone_suffixes(digits: str, shortest: int = 7) -> list[str]:
    """``digits`` and its tails of at least ``shortest`` digits: the stored keys that a
    number with extra leading digits (a country or trunk code) may stand for."""
    return [digits[i:] for i in range(0, max(1, len(digits) - shortest + 1))]


def customer_search_keys(text: str) -> dict[str, Any]:
    """What a search text is compared with: the uniqueness check's normal forms of it as
    a name, a tax id, an e-mail and a phone number (and that number's tails)."""
    keys = uniqueness_keys(text, text, text, text)
    raw = re.sub(r"\D", "", text)
    international = text.strip().startswith("+") or raw.startswith("00")
    # a short national number is searched as the end of a stored one (no country code added)
    digits = normalise_phone(text, "86") if international or len(raw) >= 10 else raw.lstrip("0")
    return {
        "name": keys.get("name", ""),
        "tax_id": keys.get("tax_id"),
        "email": keys.get("email"),
        "phone_digits": digits if len(digits) >= 4 else None,
        "phone_tails": phone_suffixes(digits) if len(digits) >= 7 else [],
    }
