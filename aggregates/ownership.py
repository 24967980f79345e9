"""Rules of passing a departing or moving person's holdings to a successor."""

from __future__ import annotations

from aggregates.errors import RuleViolationError


def require_held(owner_id: str | None, person_id: str, label: str) -> None:
    """A transfer moves only what ``person_id`` holds now (named by its title or name)."""
    if owner_id != person_id:
        raise RuleViolationError(f"{label!r} is not held by {person_id} (any more)")
