"""A sales opportunity moving through the eight-stage funnel."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from aggregates.configuration import Configuration
from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.evaluation import QUALIFICATION_CRITERIA, score_evaluation
from aggregates.field_rules import (
    require_bid_details,
    require_closing_date,
    require_configured,
    require_in_window,
)
from aggregates.funnel import FIRST_STAGE, LAST_OPEN_STAGE, WON_STAGE
from aggregates.organisation import Organisation, Role
from events.base import recording_now
from events.opportunity import (
    AmountRevised,
    BidDetailsRecorded,
    CloseDateRevised,
    OpportunityActivityLogged,
    OpportunityDisqualified,
    OpportunityEvaluated,
    OpportunityLost,
    OpportunityOpened,
    OpportunityQualified,
    OpportunityReopened,
    OpportunityWon,
    PrimaryOwnerChanged,
    StageAdvanced,
    TeamMemberAdded,
    TeamMemberRemoved,
)

STAGE_REQUIRING_QUALIFICATION = 2
FIRST_WINNABLE_STAGE = LAST_OPEN_STAGE


class Status(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Qualification(StrEnum):
    PENDING = "pending"
    QUALIFIED = "qualified"
    NURTURING = "nurturing"


class Opportunity(Aggregate):
    """One deal: its owner, team, stage, value and outcome."""

    def __init__(self) -> None:
        self.customer_id = ""
        self.owner_id = ""
        self.title = ""
        self.source = ""
        self.amount = Decimal(0)
        self.expected_close = date.min
        self.product = ""
        self.region = ""
        self.stage = FIRST_STAGE
        self.status = Status.OPEN
        self.qualification = Qualification.PENDING
        self.evaluation_score: int | None = None
        self.high_value = False
        self.team: dict[str, str] = {}
        self.bid_details: dict[str, Any] = {}
        self.won_amount: Decimal | None = None
        self.closed_on: date | None = None
        self.lost_reason: str | None = None
        self.competitor: str | None = None

    def restore_types(self) -> None:
        """After loading from a snapshot (kept as JSON): the enum fields as enums again."""
        self.status = Status(self.status)
        self.qualification = Qualification(self.qualification)

    @classmethod
    def open(
        cls,
        *,
        customer_id: str,
        owner_id: str,
        title: str,
        source: str,
        amount: Decimal,
        expected_close: date,
        product: str,
        region: str,
        actor: str,
        org: Organisation,
        opportunity_id: UUID | None = None,
    ) -> Opportunity:
        """A new deal; ``opportunity_id`` only for imports (a stable id), else a new one."""
        if amount <= 0:
            raise RuleViolationError("amount: must be positive")
        config = org.configuration
        require_configured("source", source, config.sources)
        require_configured("product", product, config.products)
        require_configured("region", region, config.regions)
        require_in_window("expected_close", expected_close, _today(), config)
        if not org.has_role(owner_id, Role.SALES_REP, Role.MANAGER):
            raise RuleViolationError(f"{owner_id!r} is not an active sales rep or manager")
        if actor != owner_id and not _is_manager_of(org, actor, owner_id):
            raise NotAllowedError("only the owner or a superior may open a deal for the owner")
        return cls._create(
            OpportunityOpened,
            id=opportunity_id,
            customer_id=customer_id,
            owner_id=owner_id,
            title=title,
            source=source,
            amount=amount,
            expected_close=expected_close,
            product=product,
            region=region,
            actor=actor,
        )

    # Queries.

    @property
    def is_open(self) -> bool:
        return self.status == Status.OPEN

    def may_change(self, actor: str, org: Organisation) -> bool:
        """Owner, team members, the owner's superiors and admins may change a deal."""
        if org.has_role(actor, Role.AUDITOR):
            return False
        return (
            actor == self.owner_id
            or actor in self.team
            or org.has_role(actor, Role.ADMIN)
            or org.is_superior(actor, self.owner_id)
        )

    # Decisions.

    def qualify(self, criteria: dict[str, bool], actor: str) -> None:
        self._require_open()
        self._require_all_criteria(criteria)
        if not all(criteria.values()):
            failed = sorted(k for k, v in criteria.items() if not v)
            raise RuleViolationError(f"criteria not met: {failed}; disqualify instead")
        if self.qualification == Qualification.QUALIFIED:
            raise RuleViolationError("opportunity is already qualified")
        self.trigger_event(OpportunityQualified, criteria=criteria, actor=actor)

    def disqualify(self, criteria: dict[str, bool], reason: str, actor: str) -> None:
        self._require_open()
        self._require_all_criteria(criteria)
        if self.stage > STAGE_REQUIRING_QUALIFICATION:
            raise RuleViolationError("a deal past stage 2 is lost, not disqualified")
        self.trigger_event(OpportunityDisqualified, criteria=criteria, reason=reason, actor=actor)

    def evaluate(self, answers: dict[str, bool], actor: str) -> None:
        self._require_open()
        score, high_value = score_evaluation(answers)
        self.trigger_event(
            OpportunityEvaluated, answers=answers, score=score, high_value=high_value, actor=actor
        )

    def advance_stage(self, to_stage: int, reason: str | None, actor: str) -> None:
        """Move to another open stage (1–7); moving back needs a reason."""
        self._require_open()
        if not FIRST_STAGE <= to_stage <= LAST_OPEN_STAGE:
            raise RuleViolationError(
                f"stage must be {FIRST_STAGE}–{LAST_OPEN_STAGE}; "
                f"stage {WON_STAGE} is reached by winning"
            )
        if to_stage == self.stage:
            raise RuleViolationError(f"opportunity is already at stage {to_stage}")
        if to_stage < self.stage and not (reason and reason.strip()):
            raise RuleViolationError("moving a deal back needs a reason")
        if (
            to_stage >= STAGE_REQUIRING_QUALIFICATION
            and self.qualification != Qualification.QUALIFIED
        ):
            raise RuleViolationError("qualify the opportunity before stage 2")
        self.trigger_event(
            StageAdvanced, from_stage=self.stage, to_stage=to_stage, reason=reason, actor=actor
        )

    def change_primary_owner(
        self, owner_id: str, reason: str, actor: str, org: Organisation
    ) -> None:
        self._require_open()
        if not (org.has_role(actor, Role.ADMIN) or org.is_superior(actor, self.owner_id)):
            raise NotAllowedError("only the current owner's superior may change the owner")
        if not org.has_role(owner_id, Role.SALES_REP, Role.MANAGER):
            raise RuleViolationError(f"{owner_id!r} is not an active sales rep or manager")
        if owner_id == self.owner_id:
            raise RuleViolationError(f"{owner_id!r} already owns this deal")
        self.trigger_event(
            PrimaryOwnerChanged,
            owner_id=owner_id,
            previous_owner_id=self.owner_id,
            reason=reason,
            actor=actor,
        )

    def add_team_member(self, person_id: str, role: str, actor: str, org: Organisation) -> None:
        self._require_open()
        org.person(person_id)
        if person_id == self.owner_id or person_id in self.team:
            raise RuleViolationError(f"{person_id!r} is already working this deal")
        self.trigger_event(TeamMemberAdded, person_id=person_id, role=role, actor=actor)

    def remove_team_member(self, person_id: str, reason: str, actor: str) -> None:
        self._require_open()
        if person_id not in self.team:
            raise RuleViolationError(f"{person_id!r} is not on the team")
        self.trigger_event(TeamMemberRemoved, person_id=person_id, reason=reason, actor=actor)

    def record_bid_details(self, details: dict[str, Any], actor: str) -> None:
        self._require_open()
        if not details:
            raise RuleViolationError("details: no bid details given")
        require_bid_details(details)
        self.trigger_event(BidDetailsRecorded, details=details, actor=actor)

    def revise_amount(self, amount: Decimal, reason: str, actor: str) -> None:
        self._require_open()
        if amount <= 0:
            raise RuleViolationError("amount must be positive")
        if amount == self.amount:
            raise RuleViolationError("amount is unchanged")
        self.trigger_event(
            AmountRevised, amount=amount, previous_amount=self.amount, reason=reason, actor=actor
        )

    def revise_close_date(
        self, expected_close: date, reason: str, actor: str, org: Organisation | None = None
    ) -> None:
        self._require_open()
        config = org.configuration if org is not None else Configuration()
        require_in_window("expected_close", expected_close, _today(), config)
        if expected_close == self.expected_close:
            raise RuleViolationError("expected close date is unchanged")
        self.trigger_event(
            CloseDateRevised,
            expected_close=expected_close,
            previous_expected_close=self.expected_close,
            reason=reason,
            actor=actor,
        )

    def log_activity(self, kind: str, summary: str, actor: str) -> None:
        self._require_open()
        self.trigger_event(OpportunityActivityLogged, kind=kind, summary=summary, actor=actor)

    def win(self, amount: Decimal, closed_on: date, actor: str) -> None:
        self._require_open()
        if amount <= 0:
            raise RuleViolationError("a won amount must be positive")
        if self.stage < FIRST_WINNABLE_STAGE:
            raise RuleViolationError(
                f"a deal is won from stage {FIRST_WINNABLE_STAGE} (negotiation); "
                f"it is at {self.stage}"
            )
        require_closing_date("closed_on", closed_on, self.created_on.date(), _today())
        self.trigger_event(OpportunityWon, amount=amount, closed_on=closed_on, actor=actor)

    def lose(self, reason: str, competitor: str | None, closed_on: date, actor: str) -> None:
        self._require_open()
        if not reason.strip():
            raise RuleViolationError("reason: a lost deal needs a reason")
        require_closing_date("closed_on", closed_on, self.created_on.date(), _today())
        self.trigger_event(
            OpportunityLost, reason=reason, competitor=competitor, closed_on=closed_on, actor=actor
        )

    def reopen(self, reason: str, stage: int, actor: str) -> None:
        if self.is_open:
            raise RuleViolationError("opportunity is open")
        if not reason.strip():
            raise RuleViolationError("reopening needs a reason")
        if not FIRST_STAGE <= stage <= LAST_OPEN_STAGE:
            raise RuleViolationError(f"reopen at a stage {FIRST_STAGE}–{LAST_OPEN_STAGE}")
        if stage >= STAGE_REQUIRING_QUALIFICATION and self.qualification != Qualification.QUALIFIED:
            raise RuleViolationError("an unqualified deal reopens at stage 1")
        self.trigger_event(OpportunityReopened, reason=reason, stage=stage, actor=actor)

    def _require_open(self) -> None:
        if not self.is_open:
            raise RuleViolationError(
                f"opportunity is {self.status.value}; only a recorded reopen can change it"
            )

    @staticmethod
    def _require_all_criteria(criteria: dict[str, bool]) -> None:
        missing = [c for c in QUALIFICATION_CRITERIA if c not in criteria]
        if missing:
            raise RuleViolationError(f"qualification criteria missing: {missing}")

    # Evolution.

    @singledispatchmethod
    def when(self, event: Any) -> None:
        raise NotImplementedError(type(event).__name__)

    @when.register
    def _(self, event: OpportunityOpened) -> None:
        self.customer_id = event.customer_id
        self.owner_id = event.owner_id
        self.title = event.title
        self.source = event.source
        self.amount = event.amount
        self.expected_close = event.expected_close
        self.product = event.product
        self.region = event.region

    @when.register
    def _(self, event: OpportunityQualified) -> None:
        self.qualification = Qualification.QUALIFIED

    @when.register
    def _(self, event: OpportunityDisqualified) -> None:
        self.qualification = Qualification.NURTURING
        self.stage = FIRST_STAGE

    @when.register
    def _(self, event: OpportunityEvaluated) -> None:
        self.evaluation_score = event.score
        self.high_value = event.high_value

    @when.register
    def _(self, event: StageAdvanced) -> None:
        self.stage = event.to_stage

    @when.register
    def _(self, event: PrimaryOwnerChanged) -> None:
        self.team.pop(event.owner_id, None)
        self.owner_id = event.owner_id

    @when.register
    def _(self, event: TeamMemberAdded) -> None:
        self.team[event.person_id] = event.role

    @when.register
    def _(self, event: TeamMemberRemoved) -> None:
        del self.team[event.person_id]

    @when.register
    def _(self, event: BidDetailsRecorded) -> None:
        self.bid_details.update(event.details)

    @when.register
    def _(self, event: AmountRevised) -> None:
        self.amount = event.amount

    @when.register
    def _(self, event: CloseDateRevised) -> None:
        self.expected_close = event.expected_close

    @when.register
    def _(self, event: OpportunityActivityLogged) -> None:
        pass

    @when.register
    def _(self, event: OpportunityWon) -> None:
        self.status = Status.WON
        self.stage = WON_STAGE
        self.won_amount = event.amount
        self.closed_on = event.closed_on

    @when.register
    def _(self, event: OpportunityLost) -> None:
        self.status = Status.LOST
        self.lost_reason = event.reason
        self.competitor = event.competitor
        self.closed_on = event.closed_on

    @when.register
    def _(self, event: OpportunityReopened) -> None:
        self.status = Status.OPEN
        self.stage = event.stage
        self.won_amount = None
        self.closed_on = None
        self.lost_reason = None
        self.competitor = None


def _today() -> date:
    return recording_now().date()


def _is_manager_of(org: Organisation, actor: str, person_id: str) -> bool:
    return org.has_role(actor, Role.ADMIN) or org.is_superior(actor, person_id)
