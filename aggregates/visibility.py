"""Who may see which record: the one rule for reads, for records named in a command and
for people named in a query.

A record the actor may not see gets the same answer as one that does not exist (an
``UnseenRecordError``), so a refusal never tells anyone what exists. Only those who see
everything (auditors and admins) learn that a record does not exist.
"""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from aggregates.customer import Customer
from aggregates.errors import NotAllowedError
from aggregates.forecast import Forecast
from aggregates.opportunity import Opportunity
from aggregates.organisation import SYSTEM_ACTOR, Organisation, Role
from aggregates.plan import SalesPlan

UNSEEN_RECORD_RULE = (
    "a record is visible only to its owner, its deal team, their superiors, auditors and "
    "admins; one you may not see and one that does not exist get this same answer"
)
UNSEEN_PERSON_RULE = (
    "a sales rep sees only themselves and a manager only their own subtree; a person you "
    "may not see and one who does not exist get this same answer"
)


class UnseenRecordError(NotAllowedError):
    """The named record does not exist or the actor may not see it (the same answer)."""

    def __init__(self, what: str, rule: str = UNSEEN_RECORD_RULE) -> None:
        super().__init__(f"{what}: {rule}")


def sees_everything(actor: str, org: Organisation) -> bool:
    """Auditors and admins (and the system itself) read every record."""
    return actor == SYSTEM_ACTOR or org.has_role(actor, Role.AUDITOR, Role.ADMIN)


def _covers(actor: str, people: set[str], org: Organisation) -> bool:
    """The actor is one of ``people`` or a superior of one of them."""
    return actor in people or any(org.is_superior(actor, p) for p in people)


def may_see(actor: str, record: Aggregate, org: Organisation) -> bool:
    """Whether ``actor`` may read ``record``."""
    if sees_everything(actor, org):
        return True
    if not org.has_role(actor, Role.SALES_REP, Role.MANAGER):
        return False
    if isinstance(record, Opportunity):
        return _covers(actor, {record.owner_id, *record.team}, org)
    if isinstance(record, Customer):
        if record.owner_id is None:
            return True
        return _covers(actor, {record.owner_id}, org)
    if isinstance(record, Forecast):
        return _covers(actor, {record.person_id}, org)
    return isinstance(record, SalesPlan)


def visible_people(actor: str, org: Organisation) -> set[str] | None:
    """The people whose records ``actor`` sees: ``None`` for everyone (auditors, admins),
    else the actor and everyone under them, including those who have left."""
    if sees_everything(actor, org):
        return None
    if not org.has_role(actor, Role.SALES_REP, Role.MANAGER):
        return set()
    return {actor} | {p for p in org.people if org.is_superior(actor, p)}


def require_visible_people(actor: str, named: set[str], org: Organisation) -> None:
    """UnseenRecordError unless ``actor`` sees every one of ``named`` people."""
    scope = visible_people(actor, org)
    if scope is not None and not named <= scope:
        raise UnseenRecordError("a person named in the request", UNSEEN_PERSON_RULE)
