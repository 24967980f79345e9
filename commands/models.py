"""Validated command requests as they arrive over HTTP, and what a command returns.

The acting person never appears here: it comes from the bearer token.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aggregates.organisation import Role

Reason = Annotated[
    str, Field(min_length=1, max_length=2000, examples=["customer asked for more time"])
]


class CommandRequest(BaseModel):
    """Base of every command request: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class CommandAccepted(BaseModel):
    """What a command did. ``position`` is the ledger position of its last event: pass it
    as ``min_position`` to a query to read your own write. A command repeated with the
    same ``Idempotency-Key`` records nothing new and answers exactly as the first time
    (with the header ``Idempotent-Replayed: true``)."""

    aggregate_id: str = Field(examples=["5b0c6c1e-54f8-4f57-9e4f-7a0d2f1b8c11"])
    version: int = Field(examples=[3])
    position: int | None = Field(examples=[1042])


# The organisation.


class AddPerson(CommandRequest):
    person_id: str = Field(min_length=1, max_length=100, examples=["alice"])
    name: str = Field(min_length=1, max_length=200, examples=["Alice Chen"])
    role: Role = Field(examples=["sales_rep"])
    manager_id: str | None = Field(default=None, examples=["bob"])


class ChangeRole(CommandRequest):
    role: Role = Field(examples=["manager"])
    reason: Reason


class ChangeManager(CommandRequest):
    manager_id: str | None = Field(examples=["carol"])
    reason: Reason


class Configure(CommandRequest):
    changes: dict[str, Any] = Field(
        min_length=1,
        examples=[{"stale_days": 21, "sources": ["web", "referral", "campaign"]}],
        description="settings to change: stage_probabilities, stale_days, sources, products, "
        "regions, time_zone, country_code, date_window_days",
    )
    reason: Reason


class RemovePerson(CommandRequest):
    reason: Reason
    successor_id: str | None = Field(
        default=None,
        max_length=200,
        description="who takes over the person's open deals and customers in the same "
        "command; without one they stay flagged in /monitoring/departed-holdings",
    )


class ReassignHoldings(CommandRequest):
    successor_id: str = Field(max_length=200, examples=["rep-north-2"])
    reason: Reason


# Customers.


class RegisterCustomer(CommandRequest):
    name: str = Field(min_length=1, max_length=300, examples=["Shanghai Bright Machinery Co."])
    source: str = Field(min_length=1, max_length=100, examples=["trade fair"])
    tax_id: str | None = Field(default=None, max_length=100, examples=["91310000MA1FL0001X"])
    phone: str | None = Field(default=None, max_length=50, examples=["+86 21 5555 0100"])
    email: str | None = Field(default=None, max_length=300, examples=["purchasing@bright.example"])
    owner_id: str | None = Field(default=None, examples=["alice"])
    profile: dict[str, Any] = Field(default_factory=dict, examples=[{"industry": "machinery"}])


class SupplementCustomer(CommandRequest):
    changes: dict[str, Any] = Field(min_length=1, examples=[{"address": "88 Century Ave"}])


class ClassifyCustomer(CommandRequest):
    classification: Literal["A", "B", "C"] = Field(examples=["A"])
    reason: Reason


class EraseCustomer(CommandRequest):
    reason: Reason


class AssignCustomer(CommandRequest):
    owner_id: str = Field(min_length=1, examples=["alice"])
    reason: Reason


class LogCustomerActivity(CommandRequest):
    kind: str = Field(examples=["visit"])
    summary: str = Field(max_length=5000, examples=["met the purchasing director"])
    opportunity_id: str | None = Field(default=None)


# Opportunities.


class OpenOpportunity(CommandRequest):
    customer_id: str = Field(examples=["0f8e2d3c-1b4a-4d5e-8f9a-0b1c2d3e4f50"])
    owner_id: str = Field(min_length=1, examples=["alice"])
    title: str = Field(min_length=1, max_length=300, examples=["Line 3 automation"])
    source: str = Field(min_length=1, max_length=100, examples=["referral"])
    amount: Decimal = Field(gt=0, max_digits=18, decimal_places=2, examples=["250000.00"])
    expected_close: date = Field(examples=["2026-06-30"])
    product: str = Field(min_length=1, max_length=100, examples=["robot-arm"])
    region: str = Field(min_length=1, max_length=100, examples=["east"])


class QualifyOpportunity(CommandRequest):
    criteria: dict[str, bool] = Field(
        examples=[
            {
                "urgency": True,
                "purchase_timing": True,
                "purchase_cycle": True,
                "decision_maker": True,
                "budget": True,
            }
        ]
    )


class DisqualifyOpportunity(CommandRequest):
    criteria: dict[str, bool]
    reason: Reason


class EvaluateOpportunity(CommandRequest):
    answers: dict[str, bool] = Field(description="the 20 yes/no value-evaluation questions")


class AdvanceStage(CommandRequest):
    to_stage: int = Field(examples=[3])
    reason: str | None = Field(default=None, examples=[None])


class ChangePrimaryOwner(CommandRequest):
    owner_id: str = Field(min_length=1, examples=["dave"])
    reason: Reason


class AddTeamMember(CommandRequest):
    person_id: str = Field(min_length=1, examples=["erin"])
    role: str = Field(min_length=1, max_length=100, examples=["presales engineer"])


class RemoveTeamMember(CommandRequest):
    reason: Reason


class RecordBidDetails(CommandRequest):
    details: dict[str, Any] = Field(
        examples=[{"sales_mode": "bid", "tender_type": "public", "competing_brands": ["ABB"]}]
    )


class ReviseAmount(CommandRequest):
    amount: Decimal = Field(gt=0, max_digits=18, decimal_places=2, examples=["275000.00"])
    reason: Reason


class ReviseCloseDate(CommandRequest):
    expected_close: date = Field(examples=["2026-09-30"])
    reason: Reason


class LogOpportunityActivity(CommandRequest):
    kind: str = Field(min_length=1, max_length=50, examples=["demo"])
    summary: str = Field(max_length=5000, examples=["demo at the customer's plant"])


class WinOpportunity(CommandRequest):
    amount: Decimal = Field(gt=0, max_digits=18, decimal_places=2, examples=["240000.00"])
    closed_on: date = Field(examples=["2026-06-15"])


class LoseOpportunity(CommandRequest):
    reason: Reason
    competitor: str | None = Field(default=None, examples=["ABB"])
    closed_on: date = Field(examples=["2026-06-15"])


class ReopenOpportunity(CommandRequest):
    reason: Reason
    stage: int = Field(examples=[5])


# Plans.

Targets = dict[str, Decimal]


class DraftPlan(CommandRequest):
    name: str = Field(min_length=1, max_length=200, examples=["FY2026 East"])
    period: str = Field(examples=["2026"])
    targets: Targets = Field(examples=[{"revenue": "12000000", "volume": "48"}])
    unit: str | None = Field(
        default=None,
        max_length=200,
        examples=["mgr-east"],
        description="the manager whose subtree the plan covers (its actuals are that "
        "subtree's won deals); default: the drafting manager's own unit; only an admin "
        "drafts a company-wide plan",
    )


class DecomposePlan(CommandRequest):
    parent: str = Field(examples=["total"])
    dimension: str = Field(examples=["region"])
    allocations: dict[str, Targets] = Field(
        examples=[{"east": {"revenue": "7000000"}, "west": {"revenue": "5000000"}}]
    )


class RevisePlan(CommandRequest):
    changes: dict[str, Targets] = Field(
        examples=[{"total": {"revenue": "13000000"}, "total/region=east": {"revenue": "8000000"}}]
    )
    direction: Literal["bottom_up", "top_down"] = Field(examples=["top_down"])
    reason: Reason


class ProposePlanTargets(CommandRequest):
    path: str = Field(
        max_length=1000,
        examples=["total/region=north/employee=rep-north-2"],
        description="a node that names you (its employee, or the manager of its department)",
    )
    targets: Targets = Field(examples=[{"revenue": "900000"}])
    reason: Reason


class ApprovePlan(CommandRequest):
    note: str = Field(default="", max_length=2000, examples=["approved by the board"])


# Forecasts.


class SubmitForecast(CommandRequest):
    opportunity_ids: list[str] = Field(
        examples=[["5b0c6c1e-54f8-4f57-9e4f-7a0d2f1b8c11"]],
        description="deals you are primary owner of, closing in the period",
    )
    categories: dict[str, Literal["pipeline", "best_case", "commit", "closed", "omitted"]] = (
        Field(
            default_factory=dict,
            description="forecast category per deal id (default: closed if won, else commit); "
            "closed and commit deals make the figure you submit",
        )
    )


class SetQuota(CommandRequest):
    amount: Decimal = Field(ge=0, max_digits=18, decimal_places=2, examples=["500000"])
    reason: Reason


class ReviseForecast(CommandRequest):
    adjusted_total: Decimal = Field(ge=0, max_digits=18, decimal_places=2, examples=["900000"])
    reason: Reason
