"""A sales plan: targets per period, decomposed along dimensions and over time."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import Aggregate

from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.organisation import Organisation, Role
from events.limits import MAX_YEAR, MIN_YEAR
from events.plan import (
    PlanApproved,
    PlanDrafted,
    PlanProposalMade,
    PlanRevised,
    TargetsDecomposed,
)

ROOT = "total"
METRICS = ("revenue", "volume", "margin", "new_outlets", "collections")
DIMENSIONS = ("product", "customer", "region", "department", "employee", "period")

_PERIOD_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("year", re.compile(r"^(\d{4})$", re.ASCII)),
    ("quarter", re.compile(r"^(\d{4})-Q([1-4])$", re.ASCII)),
    ("month", re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$", re.ASCII)),
    ("week", re.compile(r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$", re.ASCII)),
    ("day", re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII)),
)
_PERIOD_LEVELS = tuple(name for name, _ in _PERIOD_PATTERNS)


def period_level(period: str) -> str:
    """The level of ``period`` (year, quarter, month, week or day); a period that is
    malformed, or outside ``MIN_YEAR``..``MAX_YEAR``, breaks a rule."""
    for name, pattern in _PERIOD_PATTERNS:
        if pattern.fullmatch(period):
            if not MIN_YEAR <= int(period[:4]) <= MAX_YEAR:
                raise RuleViolationError(
                    f"period {period!r} is outside the supported years {MIN_YEAR}-{MAX_YEAR}"
                )
            try:
                if name == "day":
                    date.fromisoformat(period)
                if name == "week":
                    year, week = period.split("-W")
                    date.fromisocalendar(int(year), int(week), 1)
            except ValueError:
                break
            return name
    raise RuleViolationError(
        f"period {period!r} is not a year (2026), quarter (2026-Q1), month (2026-01), "
        "week (2026-W01) or day (2026-01-31)"
    )


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a period."""
    level = period_level(period)
    if level == "year":
        year = int(period)
        return date(year, 1, 1), date(year, 12, 31)
    if level == "quarter":
        year, quarter = int(period[:4]), int(period[-1])
        return date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter)
    if level == "month":
        year, month = int(period[:4]), int(period[5:7])
        return date(year, month, 1), _month_end(year, month)
    if level == "week":
        iso_year, iso_week = (int(part) for part in period.split("-W"))
        monday = date.fromisocalendar(iso_year, iso_week, 1)
        return monday, date.fromisocalendar(iso_year, iso_week, 7)
    day = date.fromisoformat(period)
    return day, day


def _month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date.fromordinal(date(year, month + 1, 1).toordinal() - 1)


def is_sub_period(child: str, parent: str) -> bool:
    """True if ``child`` is one level finer than ``parent`` (or a day of a month) and
    starts inside it."""
    child_level, parent_level = period_level(child), period_level(parent)
    one_finer = _PERIOD_LEVELS.index(child_level) == _PERIOD_LEVELS.index(parent_level) + 1
    day_of_month = (child_level, parent_level) == ("day", "month")
    if not (one_finer or day_of_month):
        return False
    start, end = period_bounds(parent)
    return start <= period_bounds(child)[0] <= end


def child_path(parent: str, dimension: str, key: str) -> str:
    return f"{parent}/{dimension}={key}"


class SalesPlan(Aggregate):
    """Targets for a period and their decomposition; children always sum to their parent."""

    def __init__(self) -> None:
        self.name = ""
        self.period = ""
        self.targets: dict[str, dict[str, Decimal]] = {}
        self.children: dict[str, dict[str, list[str]]] = {}
        self.status = "draft"
        self.revision_count = 0
        self.drafted_by = ""
        self.unit: str | None = None
        self.proposals: dict[str, dict[str, Decimal]] = {}

    @classmethod
    def draft(
        cls,
        *,
        name: str,
        period: str,
        targets: dict[str, Decimal],
        actor: str,
        org: Organisation,
        unit: str | None = None,
    ) -> SalesPlan:
        """A plan for ``unit`` (a manager: their subtree). A manager's plan is for their own
        unit unless they name one below them; only an admin drafts a company-wide plan."""
        _require_planner(actor, org)
        if unit is None and not org.has_role(actor, Role.ADMIN):
            unit = actor
        if unit is not None:
            _require_unit(unit, actor, org)
        period_level(period)
        _require_metrics(targets)
        return cls._create(
            PlanDrafted, name=name, period=period, targets=targets, unit=unit, actor=actor
        )

    # Queries.

    def period_of(self, path: str) -> str:
        """The period a node covers: the finest period segment in its path."""
        period = self.period
        for segment in path.split("/")[1:]:
            dimension, _, key = segment.partition("=")
            if dimension == "period":
                period = key
        return period

    def people_of(self, path: str, org: Organisation) -> set[str] | None:
        """Who a node is for: the deepest department (its subtree) or employee in its path,
        else the plan's unit; None: everyone (a company-wide plan)."""
        people = None if self.unit is None else org.subtree(self.unit)
        for segment in path.split("/")[1:]:
            dimension, _, key = segment.partition("=")
            if dimension == "department":
                people = org.subtree(key)
            elif dimension == "employee":
                people = {key}
        return people

    def may_change(self, actor: str, org: Organisation) -> bool:
        """Admins; for a unit's plan, its managers at, below or above the unit (below: for
        their own part of it); for a company-wide plan, every manager."""
        if org.has_role(actor, Role.ADMIN):
            return True
        if not org.has_role(actor, Role.MANAGER):
            return False
        if self.unit is None:
            return True
        return actor in org.subtree(self.unit) or org.is_superior(actor, self.unit)

    def violations(self, targets: dict[str, dict[str, Decimal]]) -> list[str]:
        """Every place where decomposed targets do not sum to their parent."""
        problems = []
        for parent, by_dimension in self.children.items():
            for dimension, paths in by_dimension.items():
                for metric, amount in targets[parent].items():
                    total = sum((targets[p].get(metric, Decimal(0)) for p in paths), Decimal(0))
                    if total != amount:
                        problems.append(
                            f"{parent} by {dimension}: {metric} children sum to {total}, "
                            f"target is {amount}"
                        )
        return problems

    # Decisions.

    def decompose(
        self,
        parent: str,
        dimension: str,
        allocations: dict[str, dict[str, Decimal]],
        actor: str,
        org: Organisation,
    ) -> None:
        self._require_planner(actor, org)
        if parent not in self.targets:
            raise RuleViolationError(f"no plan node {parent!r}")
        if dimension not in DIMENSIONS:
            raise RuleViolationError(f"dimension must be one of {DIMENSIONS}")
        if dimension in self.children.get(parent, {}):
            raise RuleViolationError(f"{parent!r} is already decomposed by {dimension}; revise it")
        if dimension != "period" and any(
            s.startswith(f"{dimension}=") for s in parent.split("/")[1:]
        ):
            raise RuleViolationError(f"{parent!r} is already a {dimension} node")
        if not allocations:
            raise RuleViolationError("no allocations given")
        parent_period = self.period_of(parent)
        for key, targets in allocations.items():
            if not key or "/" in key or "=" in key:
                raise RuleViolationError(f"invalid key {key!r}")
            self._require_known(parent, dimension, key, org)
            if dimension == "period" and not is_sub_period(key, parent_period):
                raise RuleViolationError(f"{key!r} is not a sub-period of {parent_period!r}")
            if any(amount < 0 for amount in targets.values()):
                raise RuleViolationError("targets may not be negative")
            if set(targets) != set(self.targets[parent]):
                raise RuleViolationError(
                    f"{key!r} must have the parent's metrics {sorted(self.targets[parent])}"
                )
        for metric, amount in self.targets[parent].items():
            total = sum((t[metric] for t in allocations.values()), Decimal(0))
            if total != amount:
                raise RuleViolationError(
                    f"{dimension} allocations of {metric} sum to {total}, target is {amount}"
                )
        self.trigger_event(
            TargetsDecomposed,
            parent=parent,
            dimension=dimension,
            allocations=allocations,
            actor=actor,
        )

    def revise(
        self,
        changes: dict[str, dict[str, Decimal]],
        direction: str,
        reason: str,
        actor: str,
        org: Organisation,
    ) -> None:
        """Change targets at several nodes at once; the result must still add up."""
        self._require_planner(actor, org)
        if direction not in ("bottom_up", "top_down"):
            raise RuleViolationError("direction must be bottom_up or top_down")
        if not reason.strip():
            raise RuleViolationError("a revision needs a reason")
        if not changes:
            raise RuleViolationError("no changes given")
        proposed = {path: dict(targets) for path, targets in self.targets.items()}
        for path, targets in changes.items():
            if path not in proposed:
                raise RuleViolationError(f"no plan node {path!r}")
            for metric, amount in targets.items():
                if metric not in proposed[path]:
                    raise RuleViolationError(f"{path!r} has no {metric} target")
                if amount < 0:
                    raise RuleViolationError("targets may not be negative")
                proposed[path][metric] = amount
        problems = self.violations(proposed)
        if problems:
            raise RuleViolationError("revision breaks the decomposition: " + "; ".join(problems))
        self.trigger_event(
            PlanRevised, changes=changes, direction=direction, reason=reason, actor=actor
        )

    def propose(
        self, path: str, targets: dict[str, Decimal], reason: str, actor: str, org: Organisation
    ) -> None:
        """Bottom-up: the person a node is for (its employee, or the manager of its
        department) proposes that node's targets, for a planner to adopt in a revision."""
        if path not in self.targets:
            raise RuleViolationError(f"no plan node {path!r}")
        owner = _node_owner(path)
        if owner != actor:
            raise NotAllowedError(
                "only the person a plan node is for proposes its targets "
                f"({owner or 'nobody: the node names no employee or department'})"
            )
        if not reason.strip():
            raise RuleViolationError("reason: a proposal needs a reason")
        unknown = set(targets) - set(self.targets[path])
        if not targets or unknown:
            raise RuleViolationError(
                f"targets: propose the node's metrics {sorted(self.targets[path])}"
            )
        if any(amount < 0 for amount in targets.values()):
            raise RuleViolationError("targets may not be negative")
        self.trigger_event(PlanProposalMade, path=path, targets=targets, reason=reason, actor=actor)

    def approve(self, note: str, actor: str, org: Organisation) -> None:
        if not (org.has_role(actor, Role.ADMIN) or org.is_superior(actor, self.drafted_by)):
            raise NotAllowedError("only a superior of the plan's drafter (or an admin) approves it")
        if self.status == "approved":
            raise RuleViolationError("plan is already approved")
        self.trigger_event(PlanApproved, note=note, actor=actor)

    # Evolution.

    @singledispatchmethod
    def when(self, event: Any) -> None:
        raise NotImplementedError(type(event).__name__)

    @when.register
    def _(self, event: PlanDrafted) -> None:
        self.name = event.name
        self.period = event.period
        self.unit = event.unit
        self.targets = {ROOT: dict(event.targets)}
        self.drafted_by = event.actor

    @when.register
    def _(self, event: TargetsDecomposed) -> None:
        paths = []
        for key, targets in event.allocations.items():
            path = child_path(event.parent, event.dimension, key)
            self.targets[path] = dict(targets)
            paths.append(path)
        self.children.setdefault(event.parent, {})[event.dimension] = paths

    @when.register
    def _(self, event: PlanRevised) -> None:
        for path, targets in event.changes.items():
            self.targets[path].update(targets)
        self.revision_count += 1
        if self.status == "approved":
            self.status = "revised"

    @when.register
    def _(self, event: PlanApproved) -> None:
        self.status = "approved"

    @when.register
    def _(self, event: PlanProposalMade) -> None:
        self.proposals[event.path] = dict(event.targets)

    # Rules of who and what.

    def _require_planner(self, actor: str, org: Organisation) -> None:
        _require_planner(actor, org)
        if not self.may_change(actor, org):
            raise NotAllowedError(
                f"only a manager of {self.unit}'s unit (at, below or above it) changes this plan"
            )

    def _require_known(self, parent: str, dimension: str, key: str, org: Organisation) -> None:
        """A target goes to someone of the node's people, and to a configured region or
        product (while the configuration lists any)."""
        people = self.people_of(parent, org)
        if dimension in ("employee", "department"):
            role = Role.MANAGER if dimension == "department" else None
            known = key in org.people and org.is_active(key)
            if not known or (role is not None and not org.has_role(key, role)):
                kind = "an active manager" if role else "an active person"
                raise RuleViolationError(f"{dimension}: {key!r} is not {kind}")
            if people is not None and key not in people:
                raise RuleViolationError(f"{dimension}: {key!r} is outside this node's unit")
        configured = {
            "region": org.configuration.regions, "product": org.configuration.products,
        }.get(dimension, ())  # fmt: skip
        if configured and key not in configured:
            raise RuleViolationError(f"{dimension}: {key!r} is not one of {list(configured)}")


def _require_unit(unit: str, actor: str, org: Organisation) -> None:
    if unit not in org.people or not org.has_role(unit, Role.MANAGER) or not org.is_active(unit):
        raise RuleViolationError(f"unit: {unit!r} is not an active manager")
    if not (org.has_role(actor, Role.ADMIN) or unit == actor or org.is_superior(actor, unit)):
        raise NotAllowedError("a manager plans for their own unit or one below it")


def _node_owner(path: str) -> str | None:
    """The person a node is for: the last employee or department named in its path."""
    owner = None
    for segment in path.split("/")[1:]:
        dimension, _, key = segment.partition("=")
        if dimension in ("employee", "department"):
            owner = key
    return owner


def _require_planner(actor: str, org: Organisation) -> None:
    if not org.has_role(actor, Role.MANAGER, Role.ADMIN):
        raise NotAllowedError("only a manager or admin drafts and changes plans")


def _require_metrics(targets: dict[str, Decimal]) -> None:
    if not targets:
        raise RuleViolationError("a plan needs at least one target")
    unknown = [m for m in targets if m not in METRICS]
    if unknown:
        raise RuleViolationError(f"unknown metrics {unknown}; use {METRICS}")
    if any(amount < 0 for amount in targets.values()):
        raise RuleViolationError("targets may not be negative")
