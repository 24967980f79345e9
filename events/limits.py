"""What an event may hold: the one check every event passes before it is stored.

Every consumer must be able to process every stored event: PostgreSQL text columns
(no NUL), UTF-8 encoders (no lone surrogates), JSON (finite numbers), the broker (a
bounded message size), date arithmetic (years within ``MIN_YEAR``..``MAX_YEAR``) and
64-bit integer columns. ``check_event`` walks an event's fields and raises
``EventFieldError`` naming the first field that breaks one of these limits;
``check_encoded_size`` bounds the stored state. The application calls both where its
events become stored events (``commands.application``), so no route can forget them.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

MIN_YEAR = 1900
MAX_YEAR = 2199
"""The years a date or period may fall in: wide enough for any plan, narrow enough
that every bound and neighbouring period is a valid date."""

MAX_TEXT_LENGTH = 1_000
"""Characters in a text field (names, ids, kinds, profile values…)."""
MAX_LONG_TEXT_LENGTH = 10_000
"""Characters in a free-text field (``LONG_TEXT_FIELDS``)."""
LONG_TEXT_FIELDS = frozenset({"reason", "summary", "notes", "description", "comment", "details"})
MAX_KEY_LENGTH = 200
"""Characters in a key of a mapping field (profile keys, target paths…)."""
MAX_ITEMS = 10_000
"""Entries in one list or mapping field."""
MAX_DEPTH = 8
"""Nesting of lists and mappings inside a field."""
MAX_DECIMAL = Decimal(10) ** 15
"""Amounts, targets and totals stay below this in magnitude."""
MAX_DECIMAL_DIGITS = 40
MAX_INTEGER = 2**63 - 1
MAX_EVENT_BYTES = 256 * 1024
"""An event's stored state at most; its Kafka message adds at most
``MESSAGE_OVERHEAD_BYTES`` (the relay checks the broker takes that much)."""
MESSAGE_OVERHEAD_BYTES = 16 * 1024
"""Headers, key and the value's different encoding of the same fields, at most."""

_ALLOWED_CONTROLS = frozenset("\t\n")


@dataclass
class EventFieldError(ValueError):
    """A field of an event breaks one of the storage limits."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


def check_event(event: Any) -> None:
    """Raise ``EventFieldError`` if any field of ``event`` breaks a limit."""
    for name, value in vars(event).items():
        limit = MAX_LONG_TEXT_LENGTH if name in LONG_TEXT_FIELDS else MAX_TEXT_LENGTH
        _check_value(name, value, limit, 0)


def check_encoded_size(event: Any, state: bytes) -> None:
    """Raise ``EventFieldError`` (naming the largest field) if the stored state is
    larger than ``MAX_EVENT_BYTES``."""
    if len(state) <= MAX_EVENT_BYTES:
        return
    sizes = {name: len(repr(value)) for name, value in vars(event).items()}
    largest = max(sizes, key=lambda name: sizes[name])
    raise EventFieldError(
        largest, f"the change is {len(state)} bytes encoded, more than {MAX_EVENT_BYTES}"
    )


def check_text(field: str, text: str, limit: int = MAX_TEXT_LENGTH) -> None:
    """Raise ``EventFieldError`` if ``text`` is too long or holds a character no
    consumer can take (a control character but tab and newline, a lone surrogate)."""
    if len(text) > limit:
        raise EventFieldError(field, f"longer than {limit} characters")
    if text.isprintable():  # the common case, in C: no controls, no surrogates
        return
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cs":
            raise EventFieldError(field, f"a lone surrogate at character {index}")
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            raise EventFieldError(
                field, f"a control character (U+{ord(char):04X}) at character {index}"
            )


def check_year(field: str, year: int) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise EventFieldError(field, f"the year {year} is outside {MIN_YEAR}-{MAX_YEAR}")


def _check_value(field: str, value: Any, limit: int, depth: int) -> None:  # noqa: C901, PLR0912
    if value is None or isinstance(value, bool | UUID):
        return
    if isinstance(value, Enum):
        _check_value(field, value.value, limit, depth)
    elif isinstance(value, str):
        check_text(field, value, limit)
    elif isinstance(value, int):
        if abs(value) > MAX_INTEGER:
            raise EventFieldError(field, "an integer out of the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= MAX_DECIMAL:
            raise EventFieldError(field, f"the number {value!r} is not finite or too large")
    elif isinstance(value, Decimal):
        _check_decimal(field, value)
    elif isinstance(value, date):  # datetime too
        check_year(field, value.year)
    elif isinstance(value, Mapping | list | tuple | set | frozenset):
        _check_collection(field, value, limit, depth)
    else:
        raise EventFieldError(field, f"a value of type {type(value).__name__}")


def _check_decimal(field: str, value: Decimal) -> None:
    if not value.is_finite():
        raise EventFieldError(field, f"the number {value} is not finite")
    if abs(value) >= MAX_DECIMAL:
        raise EventFieldError(field, f"the number {value} is not below {MAX_DECIMAL:.0e}")
    if len(value.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        raise EventFieldError(field, f"more than {MAX_DECIMAL_DIGITS} digits")


def _check_collection(field: str, value: Any, limit: int, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise EventFieldError(field, f"nested more than {MAX_DEPTH} levels deep")
    if len(value) > MAX_ITEMS:
        raise EventFieldError(field, f"more than {MAX_ITEMS} entries")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EventFieldError(field, "a key that is not text")
            check_text(f"{field} (a key)", key, MAX_KEY_LENGTH)
            _check_value(f"{field}.{key}", item, limit, depth + 1)
    else:
        for index, item in enumerate(value):
            _check_value(f"{field}[{index}]", item, limit, depth + 1)


__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_YEAR",
    "MESSAGE_OVERHEAD_BYTES",
    "MIN_YEAR",
    "EventFieldError",
    "check_encoded_size",
    "check_event",
    "check_text",
    "check_year",
]
