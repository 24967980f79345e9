"""Reading the moments people type: ``as_of`` and the ends of time ranges.

One rule everywhere (API and CLI):

- an offset time (``2026-12-05T10:00:00+08:00``, ``…Z``) is that instant;
- a local time without an offset (``2026-12-05T10:00``) is in the organisation's time
  zone (``LEDGER_TIME_ZONE``, UTC by default);
- a date alone (``2026-12-05``) is a whole day in that zone: as ``as_of`` or the end of a
  range it means the end of the day (everything recorded that day counts), as the start
  of a range the start of the day.

Anything else is refused with ``InvalidMomentError`` naming the parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}:?\d{2})?$"
)
MOMENT_FORMATS = (
    "a date (2026-12-05), a local time (2026-12-05T10:00, in the organisation's time zone) "
    "or a time with an offset (2026-12-05T10:00:00+08:00 or …Z)"
)


class Bound(Enum):
    """Which end of a day a date alone stands for."""

    START = "start"
    END = "end"


class InvalidMomentError(ValueError):
    """A time parameter that is not a date, a local time or an offset time."""

    def __init__(self, parameter: str, value: str) -> None:
        super().__init__(f"{parameter} must be {MOMENT_FORMATS}; got {value!r}")
        self.parameter = parameter
        self.value = value


def time_zone(name: str) -> tzinfo:
    """The organisation's time zone by IANA name; ValueError for an unknown one."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_moment(
    value: str, parameter: str, zone: tzinfo = UTC, bound: Bound = Bound.END
) -> datetime:
    """``value`` as an aware datetime, by the rule of this module's docstring."""
    text = value.strip()
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text)
            if bound is Bound.START:
                return datetime.combine(day, time.min, tzinfo=zone)
            if day == date.max:
                return datetime.combine(day, time.max, tzinfo=zone)
            start_of_next = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
            return start_of_next - timedelta(microseconds=1)
        if not _DATETIME.match(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise InvalidMomentError(parameter, value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment
