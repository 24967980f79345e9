"""The ledger's customers, opportunities and opportunity history as the CSV files the
import reads (docs/import.md): one history row per change of a deal's funnel state."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from events import customer as customer_events
from projections.base import RecordedEvent, iso_timestamp, topics_of
from projections.funnel import FUNNEL_EVENT_TYPES, evolve_deal
from services.analytics.events import recorded_events
from services.importing.crm import COLUMNS, LOST, WON

EXPORT_TOPICS = topics_of((customer_events.CustomerRegistered, *FUNNEL_EVENT_TYPES))
FILE_NAMES = {
    "customers": "customers.csv",
    "opportunities": "opportunities.csv",
    "history": "opportunity_history.csv",
}


def export_crm(ledger: Any, folder: Path) -> dict[str, Path]:
    """Write the three files into ``folder``; their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / name for kind, name in FILE_NAMES.items()}
    writers = {}
    handles = [path.open("w", newline="", encoding="utf-8") for path in paths.values()]
    try:
        for kind, handle in zip(paths, handles, strict=True):
            writers[kind] = csv.DictWriter(handle, fieldnames=COLUMNS[kind])
            writers[kind].writeheader()
        for kind, row in export_rows(recorded_events(ledger, EXPORT_TOPICS)):
            writers[kind].writerow(row)
    finally:
        for handle in handles:
            handle.close()
    return paths


def export_rows(events: Iterable[RecordedEvent]) -> Iterable[tuple[str, dict[str, str]]]:
    """(kind, row) for every customer, opportunity and change of a deal, in ledger order."""
    deals: dict[str, dict[str, Any]] = {}
    for recorded in events:
        event, kind = recorded.event, recorded.type_name
        if kind == "CustomerRegistered":
            yield "customers", _customer(recorded)
            continue
        before = deals.get(recorded.aggregate_id)
        row, _ = evolve_deal(before, recorded)
        if row is None or row is before:
            continue
        deals[recorded.aggregate_id] = row
        if kind == "OpportunityOpened":
            yield (
                "opportunities",
                {
                    "Id": recorded.aggregate_id,
                    "AccountId": event.customer_id,
                    "OwnerId": event.owner_id,
                    "Name": event.title,
                    "LeadSource": event.source,
                    "Amount": str(event.amount),
                    "CloseDate": event.expected_close.isoformat(),
                    "Product": event.product,
                    "Region": event.region,
                    "CreatedDate": recorded.recorded_at,
                },
            )
        yield "history", _history(recorded, row)


def _customer(recorded: RecordedEvent) -> dict[str, str]:
    event = recorded.event
    return {
        "Id": recorded.aggregate_id,
        "Name": event.name,
        "Source": event.source,
        "TaxId": event.tax_id or "",
        "Phone": event.phone or "",
        "Email": event.email or "",
        "OwnerId": event.owner_id or "",
        "CreatedDate": iso_timestamp(event.timestamp),
    }


def _history(recorded: RecordedEvent, row: dict[str, Any]) -> dict[str, str]:
    status = row["status"]
    closed = status in ("won", "lost")
    stage = {"won": WON, "lost": LOST}.get(status, str(row["stage"]))
    amount = row["won_amount"] if status == "won" else row["amount"]
    event = recorded.event
    lost = recorded.type_name == "OpportunityLost"
    return {
        "OpportunityId": recorded.aggregate_id,
        "CreatedDate": recorded.recorded_at,
        "StageName": stage,
        "Amount": str(amount),
        "CloseDate": str(row["closed_on"] if closed else row["expected_close"]),
        "OwnerId": str(row["owner_id"]),
        "Qualification": "" if row["qualification"] == "pending" else str(row["qualification"]),
        "LostReason": event.reason if lost else "",
        "Competitor": (event.competitor or "") if lost else "",
    }
