"""Customers: registration (with the uniqueness check), ownership, profile, activities."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from aggregates.customer import Customer
from commands.models import (
    AssignCustomer,
    ClassifyCustomer,
    CommandAccepted,
    EraseCustomer,
    LogCustomerActivity,
    RegisterCustomer,
    SupplementCustomer,
)
from services.api.aggregate_views import (
    AggregateState,
    aggregate_state,
    checked_record,
    with_etag,
)
from services.api.dependencies import ContextDep, IdempotencyKey, LedgerDep, accepted
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.api.time_params import AsOf

router = LedgerRouter(prefix="/customers", tags=["customers"])

DUPLICATE_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Already registered: the problem names the existing customer.",
        "content": {
            "application/problem+json": {
                "example": {
                    "error": "duplicate_customer",
                    "type": "urn:salesledger:problem:duplicate_customer",
                    "detail": "customer already registered as 0f8e… (same tax_id)",
                    "existing_customer_id": "0f8e2d3c-1b4a-4d5e-8f9a-0b1c2d3e4f50",
                    "matched_on": "tax_id",
                }
            }
        },
    }
}


@router.post("", response_model=CommandAccepted, status_code=201, responses=DUPLICATE_RESPONSE)
def register_customer(
    body: RegisterCustomer,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Register a customer; refused with a pointer if it is already known."""
    result = context.ledger.register_customer(
        **body.model_dump(), actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.get("/{customer_id}", response_model=AggregateState)
def get_customer(
    customer_id: str,
    request: Request,
    response: Response,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: AsOf,
) -> AggregateState:
    """A customer as it is now, or as it was at ``as_of``."""
    return with_etag(response, aggregate_state(
        ledger, Customer, customer_id, as_of, checked_record(request, customer_id)
    ))


@router.post("/{customer_id}/profile", response_model=CommandAccepted)
def supplement_customer(
    customer_id: str,
    body: SupplementCustomer,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Add or change profile data (addresses, contacts, …)."""
    result = context.ledger.supplement_customer(
        customer_id, body.changes, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{customer_id}/classification", response_model=CommandAccepted)
def classify_customer(
    customer_id: str,
    body: ClassifyCustomer,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Classify a customer A, B or C by value."""
    result = context.ledger.classify_customer(
        customer_id, body.classification, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{customer_id}/assignment", response_model=CommandAccepted)
def assign_customer(
    customer_id: str,
    body: AssignCustomer,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Assign or transfer the customer to an account manager (managers only)."""
    result = context.ledger.assign_customer(
        customer_id, body.owner_id, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)


@router.post("/{customer_id}/activities", response_model=CommandAccepted, status_code=201)
def log_customer_activity(
    customer_id: str,
    body: LogCustomerActivity,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Log a visit, call, meeting, proposal, demo, e-mail or note."""
    result = context.ledger.log_customer_activity(
        customer_id,
        body.kind,
        body.summary,
        body.opportunity_id,
        actor=actor,
        command_id=command_id,
    )
    return accepted(result, context)


@router.post("/{customer_id}/erasure", response_model=CommandAccepted)
def erase_customer(
    customer_id: str,
    body: EraseCustomer,
    context: ContextDep,
    actor: CurrentActor,
    command_id: IdempotencyKey = None,
) -> CommandAccepted:
    """Erase the customer's personal data for good (admins only): its key is destroyed."""
    result = context.ledger.erase_customer(
        customer_id, body.reason, actor=actor, command_id=command_id
    )
    return accepted(result, context)
