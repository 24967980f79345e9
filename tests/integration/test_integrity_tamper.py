"""Tampering with the stored events, bypassing the append-only triggers, is detected
and located: a flipped byte, a deleted event, two reordered events, a forged event.
Signed heads and offline bundles: ``test_transparency``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from commands.ledger import SalesLedger
from services.chain import GENESIS, event_hash
from services.integrity import ChainVerifier, Sealer
from services.schema_admin import init_db
from services.settings import Settings
from tests.conftest import below_the_application, build_team, provide_app_role

Execute = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


class TamperedStore:
    """A ledger with a few deals, sealed, plus a raw connection that bypasses the triggers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.store == "postgres":
            provide_app_role("ledger_app_tamper_tests")
        init_db(settings, app_role="ledger_app_tamper_tests")
        self.ledger = SalesLedger(env=settings.event_store_env())
        self.table: str = self.ledger.recorder.events_table_name  # type: ignore[attr-defined]
        build_team(self.ledger)
        self.deals = [self._deal("rep1"), self._deal("rep2")]
        self.burned = self._burn_positions()
        for deal in self.deals:
            self.ledger.log_opportunity_activity(
                deal, "call", "follow-up", actor="rep1" if deal == self.deals[0] else "rep2"
            )
        self._clear_burnt()
        self.wait_for_horizon()
        Sealer(self.ledger.recorder).seal()  # type: ignore[arg-type]

    def wait_for_horizon(self) -> None:
        """Wait until every stored event is below the read horizon (transactions of other
        databases on the same server can hold it back for a moment)."""
        column = "notification_id" if self.settings.store == "postgres" else "rowid"
        top = self.execute(f"SELECT max({column}) FROM {{table}}", ())[0][0]
        deadline = time.monotonic() + 60
        while self.ledger.recorder.max_notification_id() != top:
            assert time.monotonic() < deadline, "the read horizon did not reach the last event"
            time.sleep(0.05)

    def _deal(self, owner: str) -> str:
        customer = self.ledger.register_customer(
            name=f"Customer of {owner}", source="web", actor=owner
        )
        deal = self.ledger.open_opportunity(
            customer_id=customer.aggregate_id,
            owner_id=owner,
            title="ERP",
            source="web",
            amount=Decimal("1000"),
            expected_close=date(2026, 9, 1),
            product="erp",
            region="north",
            actor=owner,
        ).aggregate_id
        self.ledger.log_opportunity_activity(deal, "visit", "first visit", actor=owner)
        return deal

    def _burn_positions(self) -> list[int]:
        """Positions that never held an event (as a rolled-back insert leaves them)."""
        if self.settings.store == "postgres":
            rows = self.execute(
                "SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id')) "
                "FROM generate_series(1, 3)",
                (),
            )
            return [int(r[0]) for r in rows]
        top = self.ledger.recorder.max_notification_id() or 0
        for position in (top + 1, top + 2):
            self.execute(
                "INSERT INTO {table} (rowid, originator_id, originator_version, topic, state) "
                "VALUES (?, 'burnt', ?, 'x', x'00')",
                (position, position),
            )
        return [top + 1, top + 2]

    def _clear_burnt(self) -> None:
        if self.settings.store == "sqlite":
            self.execute("DELETE FROM {table} WHERE originator_id = 'burnt'", ())

    def execute(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return below_the_application(
            self.settings,
            statement.replace("{table}", self.table),
            params,
            sqlite_triggers=(f"{self.table}_no_update", f"{self.table}_no_delete"),
        )

    def position_of(self, aggregate_id: str, version: int) -> int:
        key = aggregate_id if self.settings.store == "postgres" else UUID(aggregate_id).hex
        column = "notification_id" if self.settings.store == "postgres" else "rowid"
        rows = self.execute(
            f"SELECT {column} FROM {{table}} WHERE originator_id = %s AND originator_version = %s",
            (key, version),
        )
        return int(rows[0][0])

    def verify(self) -> Any:
        self.wait_for_horizon()
        return ChainVerifier(self.ledger.recorder).verify_range()  # type: ignore[arg-type]


@pytest.fixture
def store(store_settings: Settings) -> Iterator[TamperedStore]:
    tampered = TamperedStore(store_settings)
    yield tampered
    tampered.ledger.close()


def test_an_untouched_store_verifies(store: TamperedStore) -> None:
    report = store.verify()
    assert report.ok, report.breaks
    assert report.events == (store.ledger.recorder.max_notification_id() or 0) - len(store.burned)
    one = ChainVerifier(store.ledger.recorder).verify_aggregate(UUID(store.deals[0]))  # type: ignore[arg-type]
    assert one.ok and one.events == 3


def test_a_flipped_byte_is_located(store: TamperedStore) -> None:
    position = store.position_of(store.deals[0], 2)
    column = "notification_id" if store.settings.store == "postgres" else "rowid"
    if store.settings.store == "postgres":
        store.execute(
            f"UPDATE {{table}} SET state = overlay(state placing '\\x7a'::bytea from 12 for 1) "
            f"WHERE {column} = %s",
            (position,),
        )
    else:
        state = store.execute(f"SELECT state FROM {{table}} WHERE {column} = ?", (position,))[0][0]
        flipped = state[:11] + bytes([state[11] ^ 0x01]) + state[12:]
        store.execute(f"UPDATE {{table}} SET state = ? WHERE {column} = ?", (flipped, position))
    first = store.verify().first_break
    assert first is not None and first.kind == "hash mismatch"
    assert (first.position, first.aggregate_id, first.version) == (position, store.deals[0], 2)


def test_a_deleted_event_is_located(store: TamperedStore) -> None:
    position = store.position_of(store.deals[0], 2)
    column = "notification_id" if store.settings.store == "postgres" else "rowid"
    store.execute(f"DELETE FROM {{table}} WHERE {column} = %s", (position,))
    report = store.verify()
    first = report.first_break
    assert first is not None and first.kind == "missing event" and first.position == position
    assert any(b.kind == "version out of order" and b.version == 3 for b in report.breaks)


def test_a_deleted_last_event_is_located_by_the_seals(store: TamperedStore) -> None:
    position = store.position_of(store.deals[1], 3)
    column = "notification_id" if store.settings.store == "postgres" else "rowid"
    store.execute(f"DELETE FROM {{table}} WHERE {column} = %s", (position,))
    first = store.verify().first_break
    assert first is not None and (first.kind, first.position) == ("missing event", position)


def test_two_reordered_events_are_located(store: TamperedStore) -> None:
    first_position = store.position_of(store.deals[0], 2)
    second_position = store.position_of(store.deals[1], 1)
    column = "notification_id" if store.settings.store == "postgres" else "rowid"
    store.execute(f"UPDATE {{table}} SET {column} = -1 WHERE {column} = %s", (first_position,))
    store.execute(
        f"UPDATE {{table}} SET {column} = %s WHERE {column} = %s", (first_position, second_position)
    )
    store.execute(f"UPDATE {{table}} SET {column} = %s WHERE {column} = -1", (second_position,))
    first = store.verify().first_break
    assert first is not None and first.kind == "differs from seal"
    assert first.position == min(first_position, second_position)


def test_a_forged_event_is_located(store: TamperedStore) -> None:
    deal = UUID(store.deals[0])
    records = store.ledger.recorder.select_aggregate_chain(deal)  # type: ignore[attr-defined]
    last = records[-1]
    topic, state = last.topic, last.state.replace(b"follow-up", b"forged-up")
    forged_hash = event_hash(last.hash, deal, last.version + 1, topic, state)
    forged_position = store.burned[0]
    if store.settings.store == "postgres":
        store.execute(
            "INSERT INTO {table} (originator_id, originator_version, topic, state, "
            "notification_id, hash) VALUES (%s, %s, %s, %s, %s, %s)",
            (deal, last.version + 1, topic, state, forged_position, forged_hash),
        )
    else:
        store.execute(
            "INSERT INTO {table} (rowid, originator_id, originator_version, topic, state, "
            "hash) VALUES (?, ?, ?, ?, ?, ?)",
            (forged_position, deal.hex, last.version + 1, topic, state, forged_hash),
        )
    report = store.verify()
    first = report.first_break
    assert first is not None
    assert (first.position, first.aggregate_id, first.version) == (
        forged_position,
        str(deal),
        last.version + 1,
    )
    assert "unsealed event" in {b.kind for b in report.breaks if b.position == forged_position}


def test_a_forged_event_with_a_wrong_hash_is_located_even_unsealed(store: TamperedStore) -> None:
    deal = UUID(store.deals[1])
    last = store.ledger.recorder.select_aggregate_chain(deal)[-1]  # type: ignore[attr-defined]
    position = (store.ledger.recorder.max_notification_id() or 0) + 100
    if store.settings.store == "postgres":
        store.execute(
            "INSERT INTO {table} (originator_id, originator_version, topic, state, "
            "notification_id, hash) VALUES (%s, %s, %s, %s, %s, %s)",
            (deal, last.version + 1, last.topic, last.state, position, GENESIS),
        )
    else:
        store.execute(
            "INSERT INTO {table} (rowid, originator_id, originator_version, topic, state, "
            "hash) VALUES (?, ?, ?, ?, ?, ?)",
            (position, deal.hex, last.version + 1, last.topic, last.state, GENESIS),
        )
    first = store.verify().first_break
    assert first is not None and (first.kind, first.position, first.version) == (
        "hash mismatch",
        position,
        last.version + 1,
    )
