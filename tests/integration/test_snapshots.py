"""Long-lived aggregates load from snapshots: a snapshot every SNAPSHOT_INTERVAL events,
taken only if it gives the aggregate back exactly, on both stores; a new process (cold)
loads the same state from the snapshot and the events after it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from aggregates.audit_log import AuditLog, audit_log_id
from aggregates.opportunity import Opportunity, Status
from commands.ledger import SalesLedger
from commands.snapshots import SNAPSHOT_INTERVAL, snapshot_due
from services.settings import Settings
from tests.conftest import build_team


def _state(aggregate: object) -> dict[str, object]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_snapshot_due_when_an_append_passes_an_interval() -> None:
    assert snapshot_due(99, 100) and snapshot_due(98, 101) and snapshot_due(199, 200)
    assert not snapshot_due(100, 101) and not snapshot_due(0, 99)


def test_a_long_deal_and_an_audit_log_load_from_snapshots(store_settings: Settings) -> None:
    ledger = SalesLedger(env=store_settings.event_store_env())
    build_team(ledger)
    customer = ledger.register_customer(name="Snap Co", source="web", actor="rep1")
    deal = ledger.open_opportunity(
        customer_id=customer.aggregate_id, owner_id="rep1", title="ERP", source="web",
        amount=Decimal("1000"), expected_close=date(2026, 9, 1), product="erp",
        region="north", actor="rep1",
    ).aggregate_id
    for n in range(SNAPSHOT_INTERVAL * 2 + 5):
        ledger.log_opportunity_activity(deal, "call", f"call {n}", actor="rep1")
    day = date(2026, 5, 1)
    for n in range(SNAPSHOT_INTERVAL + 3):
        ledger.record_export("rep1", "GET /audit", {"n": str(n)}, day)
    warm_deal = ledger.read(Opportunity, deal)
    warm_log = ledger.read(AuditLog, audit_log_id("rep1", day))
    assert ledger.snapshots is not None
    snapshots = list(ledger.snapshots.get(warm_deal.id))
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]
    assert list(ledger.snapshots.get(warm_log.id))
    ledger.close()

    cold = SalesLedger(env=store_settings.event_store_env())  # a new process: nothing cached
    cold_deal = cold.read(Opportunity, deal)
    assert _state(cold_deal) == _state(warm_deal)
    assert cold_deal.status is Status.OPEN and cold_deal.version == SNAPSHOT_INTERVAL * 2 + 6
    cold_log = cold.read(AuditLog, audit_log_id("rep1", day))
    assert _state(cold_log) == _state(warm_log)
    assert cold_log.exports[0] == ("GET /audit", {"n": "0"})
    cold.log_opportunity_activity(deal, "visit", "after the snapshot", actor="rep1")
    assert cold.read(Opportunity, deal).version == SNAPSHOT_INTERVAL * 2 + 7
    cold.close()
