"""A ledger verified in stretches cut at seals, each in a process of its own, gives the
report one pass gives: the same events, link and seals on a clean ledger, the same first
break on a tampered one (on PostgreSQL, as deployments verify long ledgers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from commands.ledger import SalesLedger
from services import parallel_verification
from services.integrity import ChainVerifier, Sealer
from services.parallel_verification import cut_at_seals, verify_spread
from services.settings import Settings
from tests.conftest import below_the_application, build_team

pytestmark = pytest.mark.integration


@pytest.fixture
def sealed(postgres_settings: Settings) -> Iterator[tuple[Settings, SalesLedger]]:
    """A ledger of some sixty events under seals of seven events each."""
    ledger = SalesLedger(env=postgres_settings.event_store_env())
    build_team(ledger)
    for n in range(25):
        customer = ledger.register_customer(name=f"Customer {n}", source="web", actor="rep1")
        ledger.supplement_customer(customer.aggregate_id, {"city": f"City {n}"}, actor="rep1")
    Sealer(ledger.recorder, batch_size=7).seal()  # type: ignore[arg-type]
    yield postgres_settings, ledger
    ledger.close()


def test_the_stretches_cover_the_range_once_and_start_after_seals(
    sealed: tuple[Settings, SalesLedger],
) -> None:
    _, ledger = sealed
    store: Any = ledger.recorder
    head = store.max_notification_id()
    stretches = cut_at_seals(store, 1, head, 3)
    assert len(stretches) == 3
    assert stretches[0][0] == 1 and stretches[-1][1] == head
    for (_, last), (first, _) in zip(stretches, stretches[1:], strict=False):
        assert first == last + 1
        assert store.last_seal(upto=last).upto_position == last


def test_a_spread_verification_reports_what_one_pass_reports(
    sealed: tuple[Settings, SalesLedger], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, ledger = sealed
    monkeypatch.setattr(parallel_verification, "PARALLEL_FROM", 0)
    one_pass = ChainVerifier(ledger.recorder).verify_range()  # type: ignore[arg-type]
    spread = verify_spread(settings, ledger.recorder, jobs=3)  # type: ignore[arg-type]
    assert one_pass.ok and spread.ok
    assert (spread.events, spread.first_position, spread.last_position) == (
        one_pass.events,
        one_pass.first_position,
        one_pass.last_position,
    )
    assert (spread.ledger_hash, spread.sealed_upto) == (one_pass.ledger_hash, one_pass.sealed_upto)


def test_a_spread_verification_finds_the_first_break_one_pass_finds(
    sealed: tuple[Settings, SalesLedger], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, ledger = sealed
    monkeypatch.setattr(parallel_verification, "PARALLEL_FROM", 0)
    table = ledger.recorder.events_table_name  # type: ignore[attr-defined]
    position = (ledger.recorder.max_notification_id() or 0) - 5
    below_the_application(
        settings,
        f"UPDATE {table} SET state = overlay(state placing '\\x7a'::bytea from 12 for 1) "
        "WHERE notification_id = %s",
        (position,),
    )
    one_pass = ChainVerifier(ledger.recorder).verify_range()  # type: ignore[arg-type]
    spread = verify_spread(settings, ledger.recorder, jobs=3)  # type: ignore[arg-type]
    assert one_pass.first_break is not None and one_pass.first_break.position == position
    assert spread.first_break == one_pass.first_break
