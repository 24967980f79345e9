"""Who may do what through the HTTP API: the one place the access policy lives.

- a sales rep reads and changes only the customers and opportunities they own or are
  on the team of (and their own forecasts);
- a manager those of everyone under them in the reporting hierarchy;
- an auditor reads everything and changes nothing;
- an admin manages people, roles and tokens, and reads everything.

Every API route is listed in ``ROUTE_POLICY`` with the rule that guards it; a route
missing from it is refused (deny by default), and a test checks the table covers
``app.routes``. A record the actor may not see is refused with the same 403 whether or
not it exists, so a refusal never reveals existence. The domain still enforces its own
finer rules on changes (only an owner's superior may reassign, and so on).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate

from aggregates.customer import Customer
from aggregates.errors import NotFoundError
from aggregates.opportunity import Opportunity
from aggregates.organisation import Organisation, Role
from aggregates.visibility import UNSEEN_RECORD_RULE, may_see, sees_everything, visible_people
from commands.ledger import SalesLedger

__all__ = ["ROUTE_POLICY", "AccessDeniedError", "check_route", "may_see", "sees_everything"]

NOT_ALLOWED_MESSAGE = UNSEEN_RECORD_RULE
"""The refusal for a record the actor may not see, or that does not exist: it names the
rule and says nothing about the record."""


class AccessDeniedError(Exception):
    """The actor may not use this route (on this record)."""


class Access(StrEnum):
    """What a route does, as far as the policy is concerned."""

    MEMBER_READ = "member_read"
    """Aggregated figures and the people list: any active member of the organisation."""
    MEMBER_WRITE = "member_write"
    """Creating something new (customer, deal, plan, own forecast): any member but auditors."""
    ADMIN = "admin"
    """People, roles and tokens."""
    OVERSIGHT = "oversight"
    """Monitoring lists (stale, slipped deals …): every member, each over the people they
    see (a rep their own, a manager their subtree, auditors and admins everyone)."""
    AUDIT = "audit"
    """Bulk reads, exports and integrity proofs: auditors and admins."""
    RECORD_READ = "record_read"
    """Reading one record: those who may see it."""
    RECORD_WRITE = "record_write"
    """Changing one record: those who may see it, never auditors."""


REFUSAL_BY_ACCESS: dict[Access, str] = {
    Access.MEMBER_READ: "only active members of the organisation read this",
    Access.MEMBER_WRITE: "an auditor changes nothing; only sales reps, managers and admins "
    "record this",
    Access.ADMIN: "only an admin manages people, roles and tokens, and erases personal data",
    Access.OVERSIGHT: "only sales reps, managers, auditors and admins watch the process",
    Access.AUDIT: "only auditors and admins read the audit trail, exports and integrity proofs",
    Access.RECORD_READ: "only active members of the organisation read records",
    Access.RECORD_WRITE: "an auditor changes nothing; only sales reps, managers and admins "
    "change records",
}
"""Each refusal names the rule that refused."""


@dataclass(frozen=True)
class RouteRule:
    """The rule for one route, and where its record id is in the path."""

    access: Access
    record_param: str | None = None
    record_kind: type[Aggregate] | None = None
    recorded: bool = False
    """A bulk read or export: serving it is recorded as an ``ExportRecorded`` event."""


def _record(
    access: Access, param: str, kind: type[Aggregate] | None, *, recorded: bool = False
) -> RouteRule:
    return RouteRule(access, param, kind, recorded)


ROUTE_POLICY: dict[tuple[str, str], RouteRule] = {
    ("GET", "/people"): RouteRule(Access.MEMBER_READ),
    ("GET", "/opportunities"): RouteRule(Access.MEMBER_READ),
    ("GET", "/customers"): RouteRule(Access.MEMBER_READ),
    ("GET", "/plans"): RouteRule(Access.MEMBER_READ),
    ("GET", "/forecasts"): RouteRule(Access.MEMBER_READ),
    ("POST", "/people"): RouteRule(Access.ADMIN),
    ("POST", "/people/{person_id}/role"): RouteRule(Access.ADMIN),
    ("POST", "/people/{person_id}/manager"): RouteRule(Access.ADMIN),
    ("POST", "/people/{person_id}/departure"): RouteRule(Access.ADMIN),
    ("POST", "/people/{person_id}/reassignment"): RouteRule(Access.MEMBER_WRITE),
    ("POST", "/tokens"): RouteRule(Access.ADMIN),
    ("GET", "/organisation/configuration"): RouteRule(Access.MEMBER_READ),
    ("POST", "/organisation/configuration"): RouteRule(Access.ADMIN),
    ("DELETE", "/tokens/{token_id}"): RouteRule(Access.ADMIN),
    ("POST", "/tokens/{token_id}/rotation"): RouteRule(Access.ADMIN),
    ("POST", "/customers"): RouteRule(Access.MEMBER_WRITE),
    ("GET", "/customers/{customer_id}"): _record(Access.RECORD_READ, "customer_id", Customer),
    **{
        ("POST", f"/customers/{{customer_id}}/{action}"): _record(
            Access.RECORD_WRITE, "customer_id", Customer
        )
        for action in ("profile", "classification", "assignment", "activities")
    },
    ("POST", "/customers/{customer_id}/erasure"): RouteRule(Access.ADMIN),
    ("POST", "/opportunities"): RouteRule(Access.MEMBER_WRITE),
    ("GET", "/opportunities/{opportunity_id}"): _record(
        Access.RECORD_READ, "opportunity_id", Opportunity
    ),
    ("GET", "/opportunities/{opportunity_id}/history"): _record(
        Access.RECORD_READ, "opportunity_id", Opportunity, recorded=True
    ),
    **{
        ("POST", f"/opportunities/{{opportunity_id}}/{action}"): _record(
            Access.RECORD_WRITE, "opportunity_id", Opportunity
        )
        for action in (
            "qualification", "disqualification", "evaluation", "stage", "owner", "team",
            "team/{person_id}/removal", "bid-details", "amount", "close-date", "activities",
            "win", "loss", "reopening",
        )
    },
    ("POST", "/plans"): RouteRule(Access.MEMBER_WRITE),
    ("GET", "/plans/{plan_id}"): RouteRule(Access.MEMBER_READ),
    ("POST", "/plans/{plan_id}/decompositions"): RouteRule(Access.MEMBER_WRITE),
    ("POST", "/plans/{plan_id}/revisions"): RouteRule(Access.MEMBER_WRITE),
    ("POST", "/plans/{plan_id}/proposals"): RouteRule(Access.MEMBER_WRITE),
    ("POST", "/plans/{plan_id}/approval"): RouteRule(Access.MEMBER_WRITE),
    ("GET", "/plans/{plan_id}/attainment"): RouteRule(Access.MEMBER_READ),
    ("GET", "/plans/{plan_id}/customer-resources"): RouteRule(Access.MEMBER_READ),
    ("POST", "/forecasts/{period}/submission"): RouteRule(Access.MEMBER_WRITE),
    ("POST", "/forecasts/{period}/people/{person_id}/revisions"): RouteRule(Access.MEMBER_WRITE),
    ("POST", "/forecasts/{period}/people/{person_id}/quota"): RouteRule(Access.MEMBER_WRITE),
    ("GET", "/forecasts/{period}"): RouteRule(Access.MEMBER_READ),
    ("GET", "/funnel"): RouteRule(Access.MEMBER_READ),
    ("GET", "/funnel/health"): RouteRule(Access.MEMBER_READ),
    ("GET", "/funnel/conversion"): RouteRule(Access.MEMBER_READ),
    ("GET", "/pipeline/changes"): RouteRule(Access.MEMBER_READ),
    ("GET", "/pipeline/flags"): RouteRule(Access.MEMBER_READ),
    ("GET", "/win-loss"): RouteRule(Access.MEMBER_READ),
    ("GET", "/forecasts/{period}/errors"): RouteRule(Access.MEMBER_READ),
    ("POST", "/imports/{kind}"): RouteRule(Access.ADMIN),
    ("GET", "/forecast-accuracy"): RouteRule(Access.MEMBER_READ),
    ("GET", "/aggregates/{aggregate_id}/field-history"): _record(
        Access.RECORD_READ, "aggregate_id", None
    ),
    **{
        ("GET", f"/monitoring/{view}"): RouteRule(Access.OVERSIGHT)
        for view in (
            "stale-deals", "slipped-deals", "activity", "unowned-customers",
            "ownership-transfers", "departed-holdings", "parked",
        )
    },
    ("GET", "/audit"): RouteRule(Access.AUDIT, recorded=True),
    ("GET", "/aggregates/{aggregate_id}"): _record(Access.RECORD_READ, "aggregate_id", None),
    ("GET", "/integrity/heads/latest"): RouteRule(Access.AUDIT),
    ("GET", "/integrity/heads/{tree_size}"): RouteRule(Access.AUDIT),
    ("GET", "/integrity/inclusion"): RouteRule(Access.AUDIT),
    ("GET", "/integrity/consistency"): RouteRule(Access.AUDIT),
    ("GET", "/integrity/bundles/{aggregate_id}"): RouteRule(Access.AUDIT, recorded=True),
}


def visible_owners(
    actor: str, org: Organisation, owners: Collection[str] | None
) -> set[str] | None:
    """``owners`` narrowed to the deals ``actor`` may see one by one: no limit (None) for
    auditors and admins, else the actor's own deals and their subtree's."""
    scope = visible_people(actor, org)
    if scope is None:
        return None if owners is None else set(owners)
    return scope if owners is None else set(owners) & scope


def check_route(
    method: str,
    path: str,
    path_params: dict[str, Any],
    actor: str,
    ledger: SalesLedger,
    read: dict[str, Aggregate] | None = None,
) -> RouteRule:
    """The route's rule, if the policy lets ``actor`` use this route; else AccessDeniedError.
    A record that does not exist raises NotFoundError only for those who see everything.
    ``read``: where the record the check read is left, by its id (for the route to answer
    from, instead of reading it again).
    ``actor`` comes from ``SalesLedger.authenticate``, which has just brought the shared
    organisation up to date, so it is read here as it is."""
    rule = ROUTE_POLICY.get((method, path))
    if rule is None:
        raise AccessDeniedError(f"no access rule for {method} {path}")
    org = ledger.organisation(fresh=False)
    active = org.is_active(actor)
    writer = org.has_role(actor, Role.SALES_REP, Role.MANAGER, Role.ADMIN)
    checks: dict[Access, Callable[[], bool]] = {
        Access.MEMBER_READ: lambda: active,
        Access.MEMBER_WRITE: lambda: writer,
        Access.ADMIN: lambda: org.has_role(actor, Role.ADMIN),
        Access.OVERSIGHT: lambda: active,
        Access.AUDIT: lambda: sees_everything(actor, org),
        Access.RECORD_READ: lambda: active,
        Access.RECORD_WRITE: lambda: writer,
    }
    if not checks[rule.access]():
        raise AccessDeniedError(REFUSAL_BY_ACCESS[rule.access])
    if rule.record_param is None:
        return rule
    record_id = str(path_params.get(rule.record_param, ""))
    record = _load_record(ledger, rule.record_kind, record_id)
    if record is not None and read is not None:
        read[record_id] = record
    if record is None or not may_see(actor, record, org):
        if record is None and sees_everything(actor, org):
            raise NotFoundError(f"no record {path_params.get(rule.record_param)}")
        raise AccessDeniedError(NOT_ALLOWED_MESSAGE)
    return rule


def _load_record(
    ledger: SalesLedger, kind: type[Aggregate] | None, record_id: str
) -> Aggregate | None:
    try:
        return ledger.read(kind or Aggregate, record_id)
    except NotFoundError:
        return None

