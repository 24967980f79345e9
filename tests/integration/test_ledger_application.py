"""The application's commands on both stores, and what only a real database can show:
racing writers, racing registrations, and followers that never skip an event."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal

import psycopg
import pytest

from aggregates.errors import (
    ConcurrencyConflictError,
    DuplicateCustomerError,
    NotAllowedError,
    NotFoundError,
    RuleViolationError,
)
from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.opportunity import Opportunity, Status
from aggregates.visibility import UnseenRecordError
from commands.ledger import SalesLedger
from services.settings import Settings
from tests.conftest import build_team

ALL_MET = {c: True for c in QUALIFICATION_CRITERIA}


def committed(settings: Settings, query: str) -> int:
    """A count or position read directly, without the followers' safe read horizon
    (which trails while any older transaction in the cluster is still running)."""
    with psycopg.connect(settings.postgres_conninfo()) as conn:
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def last_committed_position(settings: Settings) -> int:
    return committed(settings, "SELECT max(notification_id) FROM salesledger_events")


def open_deal(ledger: SalesLedger, owner: str = "rep1") -> str:
    customer = ledger.register_customer(
        name=f"Customer of {owner}", source="web", owner_id=owner, actor=owner
    )
    return ledger.open_opportunity(
        customer_id=customer.aggregate_id,
        owner_id=owner,
        title="ERP",
        source="referral",
        amount=Decimal("25000.50"),
        expected_close=date(2026, 5, 15),
        product="erp",
        region="north",
        actor=owner,
    ).aggregate_id


def test_a_deal_from_open_to_won_round_trips_every_type(ledger: SalesLedger) -> None:
    deal_id = open_deal(ledger)
    ledger.qualify_opportunity(deal_id, ALL_MET, actor="rep1")
    ledger.advance_stage(deal_id, 7, actor="rep1")
    ledger.revise_close_date(deal_id, date(2026, 6, 1), "customer asked", actor="rep1")
    result = ledger.win_opportunity(deal_id, Decimal("24000.25"), date(2026, 6, 1), actor="rep1")
    assert result.position is not None and result.version == 5
    fresh = SalesLedger(env=ledger.env)
    deal = fresh.load(Opportunity, deal_id)
    assert (deal.status, deal.won_amount, deal.closed_on) == (
        Status.WON,
        Decimal("24000.25"),
        date(2026, 6, 1),
    )
    assert deal.expected_close == date(2026, 6, 1)
    assert fresh.load(Opportunity, deal_id) == ledger.load(Opportunity, deal_id)


def test_domain_errors_are_precise(ledger: SalesLedger) -> None:
    deal_id = open_deal(ledger)
    with pytest.raises(NotFoundError):
        ledger.advance_stage("00000000-0000-0000-0000-000000000000", 2, actor="rep1")
    with pytest.raises(NotFoundError):
        ledger.advance_stage("not-a-uuid", 2, actor="rep1")
    with pytest.raises(NotAllowedError):
        ledger.log_opportunity_activity(deal_id, "call", "x", actor="rep3")
    with pytest.raises(NotAllowedError):
        ledger.log_opportunity_activity(deal_id, "call", "x", actor="auditor")
    with pytest.raises(RuleViolationError):
        ledger.advance_stage(deal_id, 3, actor="rep1")
    assert ledger.load(Opportunity, deal_id).version == 1


def test_a_repeated_command_id_applies_once(ledger: SalesLedger) -> None:
    deal_id = open_deal(ledger)
    ledger.qualify_opportunity(deal_id, ALL_MET, actor="rep1")
    first = ledger.advance_stage(deal_id, 2, actor="rep1", command_id="click-1")
    again = ledger.advance_stage(deal_id, 2, actor="rep1", command_id="click-1")
    assert not first.duplicate and again.duplicate
    assert (again.aggregate_id, again.version) == (first.aggregate_id, first.version)
    assert ledger.load(Opportunity, deal_id).version == first.version


def test_claims_with_quotes_commas_backslashes_and_accents_are_recorded_as_given(
    ledger: SalesLedger,
) -> None:
    """Claims travel as text arrays (on PostgreSQL, formatted by psycopg's dumper for the
    one-event append that bypasses its cursor): what is recorded is exactly what was sent."""
    deal_id = open_deal(ledger)
    awkward = 'say "hi", {then} \\ leave; NULL, Ünïcødé'
    first = ledger.log_opportunity_activity(deal_id, "call", "x", actor="rep1", command_id=awkward)
    again = ledger.log_opportunity_activity(deal_id, "call", "x", actor="rep1", command_id=awkward)
    assert again.duplicate and (again.aggregate_id, again.version) == (
        first.aggregate_id,
        first.version,
    )
    key = f"command:rep1:{awkward}"
    assert ledger.store.select_claims([key]) == {key: f"{deal_id}:{first.version}"}
    customer = ledger.register_customer(
        name='"Quoted", Back\\slash & Söhne', source="web", tax_id='T"1,\\2', actor="rep1"
    )
    with pytest.raises(DuplicateCustomerError) as caught:
        ledger.register_customer(name="Someone else", source="web", tax_id='T"1,\\2', actor="rep2")
    assert caught.value.existing_customer_id == customer.aggregate_id


def test_duplicate_customers_are_refused_with_the_existing_id(ledger: SalesLedger) -> None:
    first = ledger.register_customer(
        name="Acme Trading Ltd", source="web", tax_id="TX-1", actor="rep1"
    )
    for variant in (
        {"name": "ACME trading limited"},
        {"name": "Different name", "tax_id": "tx1"},
    ):
        with pytest.raises(DuplicateCustomerError) as caught:
            ledger.register_customer(source="web", actor="rep2", **variant)  # type: ignore[arg-type]
        assert caught.value.existing_customer_id == first.aggregate_id


def test_forecasts_count_only_deals_of_the_primary_owner(ledger: SalesLedger) -> None:
    mine, theirs = open_deal(ledger, "rep1"), open_deal(ledger, "rep2")
    with pytest.raises(UnseenRecordError):
        ledger.submit_forecast("2026-Q2", [mine, theirs], actor="rep1")
    ledger.add_team_member(theirs, "rep1", "engineer", actor="rep2")
    with pytest.raises(RuleViolationError, match="not yours"):
        ledger.submit_forecast("2026-Q2", [mine, theirs], actor="rep1")
    ledger.submit_forecast("2026-Q2", [mine], actor="rep1")
    ledger.submit_forecast("2026-Q2", [theirs], actor="rep2")
    ledger.submit_forecast("2026-Q2", [], actor="mgr")
    assert ledger.forecast("mgr", "2026-Q2").figure(ledger.organisation()) == Decimal("50001.00")
    ledger.revise_forecast("mgr", "2026-Q2", Decimal("45000"), "slippage risk", actor="vp")
    ledger.submit_forecast("2026-Q2", [], actor="vp")
    assert ledger.forecast("vp", "2026-Q2").team == {
        "mgr": Decimal("45000"),
        "other-mgr": Decimal(0),
    } or (ledger.forecast("vp", "2026-Q2").team == {"mgr": Decimal("45000")})
    assert ledger.forecast("vp", "2026-Q2").figure(ledger.organisation()) == Decimal("45000")


@pytest.mark.integration
def test_two_concurrent_writers_on_one_deal_give_one_success_and_one_conflict(
    postgres_settings: Settings,
) -> None:
    first = SalesLedger(env=postgres_settings.event_store_env())
    build_team(first)
    deal_id = open_deal(first)
    second = SalesLedger(env=postgres_settings.event_store_env())
    copies = [first.load(Opportunity, deal_id), second.load(Opportunity, deal_id)]
    copies[0].log_activity("call", "from the office", "rep1")
    copies[1].log_activity("visit", "on site", "rep1")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def save(ledger: SalesLedger, deal: Opportunity) -> None:
        barrier.wait()
        try:
            outcomes.append(ledger._save(deal, actor="rep1", command_id=None))  # noqa: SLF001
        except ConcurrencyConflictError as error:
            outcomes.append(error)

    threads = [
        threading.Thread(target=save, args=pair)
        for pair in zip((first, second), copies, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(o).__name__ for o in outcomes) == [
        "CommandResult",
        "ConcurrencyConflictError",
    ]
    stored = list(first.events.get(copies[0].id))
    assert [e.originator_version for e in stored] == [1, 2]
    assert (
        SalesLedger(env=postgres_settings.event_store_env()).load(Opportunity, deal_id).version == 2
    )
    # The failed append released the insert lock: both writers go on writing.
    for ledger in (first, second):
        after = threading.Thread(
            target=ledger.log_opportunity_activity,
            args=(deal_id, "call", "after the conflict"),
            kwargs={"actor": "rep1"},
        )
        after.start()
        after.join(timeout=20)
        assert not after.is_alive(), "an append is stuck behind a leaked insert lock"
    assert [e.originator_version for e in first.events.get(copies[0].id)] == [1, 2, 3, 4]


def test_a_decision_on_a_cached_organisation_is_made_again_when_another_process_changed_it(
    store_settings: Settings,
) -> None:
    """The append is guarded by the organisation's version, so a process deciding on its
    cached copy of the organisation cannot act on a change it has not seen."""
    first = SalesLedger(env=store_settings.event_store_env())
    build_team(first)
    deal_id = open_deal(first)
    first.log_opportunity_activity(deal_id, "call", "organisation cached", actor="rep1")
    second = SalesLedger(env=store_settings.event_store_env())
    second.remove_person("rep1", "left the company", actor="admin")
    with pytest.raises(NotAllowedError):
        first.log_opportunity_activity(deal_id, "call", "after leaving", actor="rep1")
    deal = second.load(Opportunity, deal_id)
    assert deal.version == 2
    # A change the organisation allows still goes through on the refreshed copy.
    first.log_opportunity_activity(deal_id, "call", "for the departed rep", actor="mgr")
    assert second.load(Opportunity, deal_id).version == 3
    for ledger in (first, second):
        ledger.close()


@pytest.mark.integration
def test_racing_registrations_of_one_customer_leave_exactly_one(
    postgres_settings: Settings,
) -> None:
    setup = SalesLedger(env=postgres_settings.event_store_env())
    build_team(setup)
    ledgers = [SalesLedger(env=postgres_settings.event_store_env()) for _ in range(6)]
    barrier = threading.Barrier(len(ledgers))
    results: list[object] = []

    def register(ledger: SalesLedger, n: int) -> None:
        barrier.wait()
        try:
            results.append(
                ledger.register_customer(
                    name=f"Racing Co {'Ltd' if n % 2 else ''}",
                    source="web",
                    tax_id=f"R{n}",
                    actor="rep1",
                )
            )
        except DuplicateCustomerError as error:
            results.append(error)

    threads = [
        threading.Thread(target=register, args=(ledger, n)) for n, ledger in enumerate(ledgers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if not isinstance(r, DuplicateCustomerError)]
    losers = [r for r in results if isinstance(r, DuplicateCustomerError)]
    assert len(winners) == 1 and len(losers) == 5
    assert {loser.existing_customer_id for loser in losers} == {winners[0].aggregate_id}  # type: ignore[attr-defined]
    registrations = committed(
        postgres_settings,
        "SELECT count(*) FROM salesledger_events "
        "WHERE topic = 'events.customer:CustomerRegistered'",
    )
    assert registrations == 1


@pytest.mark.integration
def test_a_follower_sees_every_event_in_order_with_many_concurrent_writers(
    postgres_settings: Settings,
) -> None:
    setup = SalesLedger(env=postgres_settings.event_store_env())
    build_team(setup)
    deals = [open_deal(setup, owner) for owner in ("rep1", "rep2", "rep3", "mgr")]
    writers_done = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        reader = SalesLedger(env=postgres_settings.event_store_env())
        last = 0
        deadline = None
        while True:
            if writers_done.is_set() and deadline is None:
                deadline = time.monotonic() + 30
                target = last_committed_position(postgres_settings)
            batch = reader.recorder.select_notifications(last, 100, inclusive_of_start=False)
            seen.extend(n.id for n in batch)
            if batch:
                last = batch[-1].id
            elif deadline is not None and (last >= target or time.monotonic() > deadline):
                return

    def write(deal_id: str, owner: str) -> None:
        ledger = SalesLedger(env=postgres_settings.event_store_env())
        for n in range(60):
            ledger.log_opportunity_activity(deal_id, "call", f"call {n}", actor=owner)

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [
        threading.Thread(target=write, args=(d, o))
        for d, o in zip(deals, ("rep1", "rep2", "rep3", "mgr"), strict=True)
    ]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    writers_done.set()
    follower.join(timeout=60)
    everything = [n.id for n in setup.recorder.select_notifications(1, 100_000)]
    assert len(everything) == 17 + 4 * 60
    assert seen == everything, "the follower skipped or reordered events"
