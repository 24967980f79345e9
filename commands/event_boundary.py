"""The event boundary: every event is checked against ``events.limits`` before it is stored.

``CheckedMapper`` is the mapper ``LedgerApplication`` stores events through (personal
fields encrypted by ``PersonalDataMapper``, then the size of the encoded state checked).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import StoredEvent

from aggregates.errors import InvalidFieldError
from commands.personal_data import PersonalDataMapper
from events.limits import EventFieldError, check_encoded_size, check_event


class CheckedMapper(PersonalDataMapper):
    """The event boundary: every event passes ``events.limits`` before it is stored,
    whichever command made it; a value no consumer could process is refused
    (``InvalidFieldError``, naming the field) and nothing is written."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        try:
            check_event(domain_event)
            stored = super().to_stored_event(domain_event)
            check_encoded_size(domain_event, stored.state)
        except EventFieldError as error:
            raise InvalidFieldError(error.field, error.problem) from None
        return stored
