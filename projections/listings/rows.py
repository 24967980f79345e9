"""The rows of the lists: their columns, the row a new deal or customer starts as, the
row of an erased customer, and how each deal event changes a deal's row
(``DEAL_CHANGES``).
"""

from __future__ import annotations

from typing import Any

from aggregates.customer import uniqueness_keys
from events.personal import ERASED
from projections.base import RecordedEvent
from projections.store import Row

OPPORTUNITY_COLUMNS = (
    "opportunity_id",
    "customer_id",
    "owner_id",
    "title",
    "source",
    "product",
    "region",
    "amount",
    "amount_text",
    "expected_close",
    "stage",
    "status",
    "qualification",
    "high_value",
    "evaluation_score",
    "opened_at",
    "idle_since",
    "updated_at",
    "won_amount_text",
    "closed_on",
    "version",
)
CUSTOMER_COLUMNS = (
    "customer_id",
    "name",
    "name_key",
    "source",
    "tax_id",
    "tax_key",
    "phone",
    "phone_key",
    "phone_rev",
    "email",
    "email_key",
    "owner_id",
    "classification",
    "region",
    "registered_at",
    "updated_at",
    "version",
)
FORECAST_COLUMNS = (
    "forecast_id",
    "person_id",
    "period",
    "status",
    "total",
    "total_text",
    "submitted_at",
    "updated_at",
    "version",
)


def opened_deal(recorded: RecordedEvent) -> Row:
    event, at = recorded.event, recorded.recorded_at
    return {
        "opportunity_id": recorded.aggregate_id,
        "customer_id": event.customer_id,
        "owner_id": event.owner_id,
        "title": event.title,
        "source": event.source,
        "product": event.product,
        "region": event.region,
        "amount": str(event.amount),
        "amount_text": str(event.amount),
        "expected_close": event.expected_close.isoformat(),
        "stage": 1,
        "status": "open",
        "qualification": "pending",
        "high_value": 0,
        "evaluation_score": None,
        "opened_at": at,
        "idle_since": at,
        "updated_at": at,
        "won_amount_text": None,
        "closed_on": None,
        "version": event.originator_version,
    }


def registered_customer(recorded: RecordedEvent) -> Row:
    event, at = recorded.event, recorded.recorded_at
    keys = uniqueness_keys(event.name, event.tax_id, event.phone, event.email)
    phone_key = keys.get("phone")
    return {
        "customer_id": recorded.aggregate_id,
        "name": event.name,
        "name_key": keys["name"],
        "source": event.source,
        "tax_id": event.tax_id,
        "tax_key": keys.get("tax_id"),
        "phone": event.phone,
        "phone_key": phone_key,
        "phone_rev": phone_key[::-1] if phone_key else None,
        "email": event.email,
        "email_key": keys.get("email"),
        "owner_id": event.owner_id,
        "classification": None,
        "region": text_or_none(event.profile.get("region")),
        "registered_at": at,
        "updated_at": at,
        "version": event.originator_version,
    }


ERASED_CUSTOMER_COLUMNS: Row = {
    "name": ERASED,
    "name_key": "",
    "tax_id": None,
    "tax_key": None,
    "phone": None,
    "phone_key": None,
    "phone_rev": None,
    "email": None,
    "email_key": None,
    "region": None,
}
"""A customer's row once its personal data is erased: no personal value, no search key."""


def text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def no_change(row: Row, event: Any, at: str) -> None:
    return None


def _worked(row: Row, at: str) -> None:
    row["idle_since"] = max(row["idle_since"], at)


def _stage(row: Row, event: Any, at: str) -> None:
    row["stage"] = event.to_stage
    _worked(row, at)


def _disqualified(row: Row, event: Any, at: str) -> None:
    row.update(stage=1, qualification="nurturing")
    _worked(row, at)


def _evaluated(row: Row, event: Any, at: str) -> None:
    row.update(high_value=int(bool(event.high_value)), evaluation_score=event.score)


def _won(row: Row, event: Any, at: str) -> None:
    row.update(stage=8, status="won", won_amount_text=str(event.amount))
    row["closed_on"] = event.closed_on.isoformat()
    _worked(row, at)


def _lost(row: Row, event: Any, at: str) -> None:
    row.update(status="lost", closed_on=event.closed_on.isoformat())
    _worked(row, at)


def _reopened(row: Row, event: Any, at: str) -> None:
    row.update(status="open", stage=event.stage, won_amount_text=None, closed_on=None)
    _worked(row, at)


def _amount(row: Row, event: Any, at: str) -> None:
    row.update(amount=str(event.amount), amount_text=str(event.amount))


DEAL_CHANGES: dict[str, Any] = {
    "OpportunityQualified": lambda row, event, at: row.update(qualification="qualified"),
    "OpportunityDisqualified": _disqualified,
    "OpportunityEvaluated": _evaluated,
    "StageAdvanced": _stage,
    "PrimaryOwnerChanged": lambda row, event, at: row.update(owner_id=event.owner_id),
    "AmountRevised": _amount,
    "CloseDateRevised": lambda row, event, at: row.update(
        expected_close=event.expected_close.isoformat()
    ),
    "OpportunityActivityLogged": lambda row, event, at: _worked(row, at),
    "OpportunityWon": _won,
    "OpportunityLost": _lost,
    "OpportunityReopened": _reopened,
}
