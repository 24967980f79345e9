"""Who may change a record: the rule every command checks before it decides."""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from aggregates.customer import Customer
from aggregates.errors import NotAllowedError
from aggregates.opportunity import Opportunity
from aggregates.organisation import SYSTEM_ACTOR, Organisation, Role


def may_change_customer(customer: Customer, actor: str, org: Organisation) -> bool:
    """The account manager, their superiors and admins; anyone who sells, while the
    customer has no account manager."""
    if org.has_role(actor, Role.ADMIN) or actor == customer.owner_id:
        return True
    if customer.owner_id is None:
        return org.has_role(actor, Role.MANAGER, Role.SALES_REP)
    return org.is_superior(actor, customer.owner_id)


def require_may_change(aggregate: Aggregate, actor: str, org: Organisation) -> None:
    """Refuse an auditor, a person who has left, and anyone the record's rule excludes."""
    if org.has_role(actor, Role.AUDITOR) or not (actor == SYSTEM_ACTOR or org.is_active(actor)):
        raise NotAllowedError(f"{actor!r} may not change anything")
    if isinstance(aggregate, Opportunity) and not aggregate.may_change(actor, org):
        raise NotAllowedError("only the owner, the deal team or their superiors may change it")
    if isinstance(aggregate, Customer) and not may_change_customer(aggregate, actor, org):
        raise NotAllowedError("only the account manager or their superiors may change it")
