"""The organisation's configuration: what the brief calls configurable, changed only by
recorded events (who, when, why)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregates.errors import RuleViolationError
from aggregates.funnel import LAST_OPEN_STAGE, STAGE_PROBABILITY

DEFAULT_SOURCES = (
    "campaign",
    "referral",
    "web",
    "channel_partner",
    "trade_show",
    "fair",
    "service",
    "purchased_list",
)


@dataclass(frozen=True)
class Configuration:
    """Values in force; ``products`` and ``regions`` restrict nothing while empty."""

    stage_probabilities: dict[int, int] = field(
        default_factory=lambda: {
            s: int(p * 100) for s, p in STAGE_PROBABILITY.items() if s <= LAST_OPEN_STAGE
        }
    )
    stale_days: int = 30
    sources: tuple[str, ...] = DEFAULT_SOURCES
    products: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    time_zone: str = "UTC"
    country_code: str = "86"
    date_window_days: int = 1830
    """Expected-close and closing dates lie within this many days of the day recorded."""

    def probabilities(self) -> dict[int, Decimal]:
        """Each stage's win probability as a fraction (a won deal's is 1), as configured."""
        configured = {
            stage: Decimal(percent) / 100 for stage, percent in self.stage_probabilities.items()
        }
        return {**STAGE_PROBABILITY, **configured}

    def changed(self, changes: dict[str, Any]) -> Configuration:
        """This configuration with ``changes`` (as recorded in the event) applied."""
        values = dict(changes)
        if "stage_probabilities" in values:
            values["stage_probabilities"] = {
                int(k): int(v) for k, v in values["stage_probabilities"].items()
            }
        for key in ("sources", "products", "regions"):
            if key in values:
                values[key] = tuple(values[key])
        return replace(self, **values)


def checked_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The changes as they are recorded; a RuleViolationError naming the field otherwise."""
    if not changes:
        raise RuleViolationError("configuration: nothing to change")
    known = set(Configuration.__dataclass_fields__)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise RuleViolationError(f"{unknown[0]}: not a setting; use one of {sorted(known)}")
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        checked[key] = _CHECKS[key](key, value)
    return checked


def _positive_int(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 36500:
        raise RuleViolationError(f"{key}: a whole number of days from 1 to 36500")
    return value


def _names(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,62}", v) for v in value
    ):
        raise RuleViolationError(f"{key}: a list of lower-case names (letters, digits, _ and -)")
    if len(set(value)) != len(value):
        raise RuleViolationError(f"{key}: names appear once")
    return list(value)


def _probabilities(key: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or {str(k) for k in value} != {str(s) for s in range(1, 8)}:
        raise RuleViolationError(f"{key}: a percentage for each open stage 1-7")
    result = {str(k): v for k, v in value.items()}
    numbers = [result[str(s)] for s in range(1, 8)]
    if not all(isinstance(n, int) and 0 <= n <= 100 for n in numbers):
        raise RuleViolationError(f"{key}: percentages are whole numbers from 0 to 100")
    if numbers != sorted(numbers):
        raise RuleViolationError(f"{key}: a later stage is no less likely to win")
    return result


def _time_zone(key: str, value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleViolationError(f"{key}: an IANA time zone such as Asia/Shanghai") from None
    return str(value)


def _country_code(key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[1-9]\d{0,2}", value):
        raise RuleViolationError(f"{key}: the calling code without + (86, 49, 1)")
    return value


_CHECKS = {
    "stage_probabilities": _probabilities,
    "stale_days": _positive_int,
    "sources": _names,
    "products": _names,
    "regions": _names,
    "time_zone": _time_zone,
    "country_code": _country_code,
    "date_window_days": _positive_int,
}
