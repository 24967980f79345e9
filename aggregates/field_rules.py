"""The values a user types, checked against the brief's enumerations and the
organisation's configuration; each refusal names the field.

(Generic checks — control characters, sizes, decimal ranges — happen at the event
boundary; these are the domain's own values.)
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aggregates.configuration import Configuration
from aggregates.errors import RuleViolationError

SALES_MODES = ("bid", "batch", "distribution")
TENDER_TYPES = ("public", "invited", "competitive_negotiation", "single_source", "inquiry")
RELATIONSHIP_LEVELS = (">80%", ">60%", "<30%", "unknown")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
IDENTITY_PROFILE_KEYS = ("phone", "email", "tax_id")


def _one_of(allowed: tuple[str, ...]) -> Any:
    def check(key: str, value: Any) -> Any:
        if value not in allowed:
            raise RuleViolationError(f"{key}: must be one of {list(allowed)}, not {value!r}")
        return value

    return check


def _quantity(key: str, value: Any) -> Any:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RuleViolationError(f"{key}: a number") from None
    if isinstance(value, bool) or not number.is_finite() or number < 0:
        raise RuleViolationError(f"{key}: a number of at least 0")
    return value


def _count(key: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuleViolationError(f"{key}: a whole number of at least 0")
    return value


def _text(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        raise RuleViolationError(f"{key}: text")
    return value


def _texts(key: str, value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleViolationError(f"{key}: a list of texts")
    return value


def _iso_date(key: str, value: Any) -> Any:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        raise RuleViolationError(f"{key}: a date such as 2026-09-30") from None
    return value


def _anything_structured(key: str, value: Any) -> Any:
    if not isinstance(value, (str, list, dict)):
        raise RuleViolationError(f"{key}: text, a list or an object")
    return value


BID_DETAIL_FIELDS: dict[str, Any] = {
    "sales_mode": _one_of(SALES_MODES),
    "tender_type": _one_of(TENDER_TYPES),
    "lots": _count,
    "partners": _texts,
    "delivery_date": _iso_date,
    "delivery_place": _text,
    "evaluation_criteria": _anything_structured,
    "competing_brands": _texts,
    "relationship_level": _one_of(RELATIONSHIP_LEVELS),
    "configuration": _anything_structured,
    "quantity": _quantity,
    "expected_price": _quantity,
    "quote": _quantity,
}


def require_bid_details(details: dict[str, Any]) -> None:
    """Every key known, every value of its kind (the brief's key-account bid fields)."""
    for key, value in details.items():
        check = BID_DETAIL_FIELDS.get(key)
        if check is None:
            raise RuleViolationError(
                f"details.{key}: not a bid detail; use {sorted(BID_DETAIL_FIELDS)}"
            )
        check(f"details.{key}", value)


def require_email(field: str, email: str | None) -> None:
    if email is not None and not _EMAIL.match(email.strip()):
        raise RuleViolationError(f"{field}: not an e-mail address such as name@example.com")


def normalise_phone(phone: str, country_code: str) -> str:
    """The phone as international digits: ``+49 30 1234567``, ``0049 30 1234567`` and the
    national ``030 1234567`` (with country code 49) are all ``49301234567``."""
    text = phone.strip()
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    return country_code + digits.lstrip("0")


def require_phone(field: str, phone: str | None) -> None:
    if phone is None:
        return
    if re.search(r"[^\d\s()+\-./]", phone) or not 5 <= len(re.sub(r"\D", "", phone)) <= 17:
        raise RuleViolationError(f"{field}: a phone number such as +86 21 5555 0100")


def require_configured(field: str, value: str, allowed: tuple[str, ...]) -> None:
    """``value`` is one of the configured names (an empty list allows any)."""
    if allowed and value not in allowed:
        raise RuleViolationError(f"{field}: must be one of {list(allowed)}, not {value!r}")


def require_in_window(field: str, day: date, today: date, config: Configuration) -> None:
    window = timedelta(days=config.date_window_days)
    if not today - window <= day <= today + window:
        raise RuleViolationError(
            f"{field}: must lie within {config.date_window_days} days of today ({today})"
        )


def require_closing_date(field: str, day: date, opened_on: date, today: date) -> None:
    """A deal closes neither before it was opened nor after today."""
    if day < opened_on:
        raise RuleViolationError(f"{field}: before the deal was opened ({opened_on})")
    if day > today + timedelta(days=1):
        raise RuleViolationError(f"{field}: after today ({today})")
