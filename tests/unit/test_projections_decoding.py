"""The projections' fast decoder and the read-ahead catch-up agree with the plain paths."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aggregates.evaluation import QUALIFICATION_CRITERIA
from commands.ledger import SalesLedger
from events.base import recorded_at
from events.personal import personal_fields_of
from projections.audit import AuditTrailProjection, event_changes, stored_changes
from projections.base import RecordedEvent
from projections.decoding import NotificationDecoder, parse_stored_json
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.bootstrap import build_ledger
from services.database import Database, Transaction
from services.persistence import LedgerSQLiteRecorder
from services.settings import Settings
from tests.unit.test_projections_rebuild import table_rows

START = datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)


def _ledger_with_history(path: Path) -> SalesLedger:
    ledger = build_ledger(Settings(store="sqlite", sqlite_path=str(path)))
    ledger.set_up_organisation("Co", "admin", "Admin")
    ledger.add_person("boss", "Boss", "manager", None, actor="admin")
    ledger.add_person("rep", "Rep", "sales_rep", "boss", actor="admin")
    for n in range(6):
        with recorded_at(START + timedelta(days=n, microseconds=-START.microsecond * (n % 2))):
            customer = ledger.register_customer(
                name=f"Customer {n}", source="web", owner_id="rep", actor="boss"
            ).aggregate_id
            deal = ledger.open_opportunity(
                customer_id=customer,
                owner_id="rep",
                title="deal",
                source="web",
                amount=Decimal("1000.50"),
                expected_close=date(2026, 3, 15),
                product="arm",
                region="east",
                actor="boss",
            ).aggregate_id
            ledger.qualify_opportunity(
                deal, {c: True for c in QUALIFICATION_CRITERIA}, actor="boss"
            )
            ledger.advance_stage(deal, 2 + n % 5, "progress", actor="boss")
            ledger.submit_forecast("2026", [], actor="rep")
    return ledger


def _rows(ledger: SalesLedger) -> list[tuple[int, str, int, str, bytes]]:
    assert isinstance(ledger.recorder, LedgerSQLiteRecorder)
    return ledger.recorder.select_notification_rows(0, 1000)


def test_the_decoder_gives_the_mappers_events(tmp_path: Path) -> None:
    ledger = _ledger_with_history(tmp_path / "ledger.db")
    notifications = ledger.recorder.select_notifications(0, 1000, inclusive_of_start=False)
    decode = NotificationDecoder(ledger.mapper)
    for notification in notifications:
        fast = decode(notification)
        plain = RecordedEvent.of(notification.id, ledger.mapper.to_domain_event(notification))
        assert type(fast.event) is type(plain.event)
        assert vars(fast.event) == vars(plain.event)
        assert fast[2:6] == plain[2:6]
    rows = _rows(ledger)
    for from_row, from_notification in zip(
        decode.decode_rows(rows), map(decode, notifications), strict=True
    ):
        assert vars(from_row.event) == vars(from_notification.event)
        assert from_row == from_notification


def test_audit_changes_read_the_same_from_stored_json_and_from_the_event(tmp_path: Path) -> None:
    ledger = _ledger_with_history(tmp_path / "ledger.db")
    decode = NotificationDecoder(ledger.mapper)
    for recorded in decode.decode_rows(_rows(ledger)):
        encoded = json.dumps(event_changes(recorded.event), default=str, sort_keys=True)
        if personal_fields_of(type(recorded.event)):
            assert recorded.state is None  # its stored JSON holds ciphertext, not changes
            continue
        assert recorded.state is not None
        assert stored_changes(recorded.state) == stored_changes(encoded) == json.loads(encoded)


def test_a_catch_up_reading_ahead_gives_the_same_rows(tmp_path: Path) -> None:
    ledger = _ledger_with_history(tmp_path / "ledger.db")
    rows = []
    for name, read_ahead_from in (("plain", 10**9), ("ahead", 1)):
        database = Database(Settings(store="sqlite", sqlite_path=str(tmp_path / f"{name}.db")))
        runner = ProjectionRunner(
            ledger,
            database,
            all_projections(),
            batch_size=7,
            read_ahead_from=read_ahead_from,
            catch_up_batch_size=5,
        )
        assert runner.catch_up() == ledger.recorder.max_notification_id()
        rows.append(table_rows(database))
        database.close()
    assert rows[0] == rows[1]


def test_the_fast_json_parser_gives_what_json_gives_where_it_would_refuse() -> None:
    text = '{"big": 123456789012345678901234567890, "nan": NaN, "amount": "1000.50"}'
    parsed = parse_stored_json(text)
    assert parsed["big"] == json.loads(text)["big"]
    assert math.isnan(parsed["nan"])
    assert parse_stored_json('{"to_stage": 3, "reason": null}') == {"to_stage": 3, "reason": None}


def test_a_follower_whose_position_moved_meanwhile_applies_nothing(tmp_path: Path) -> None:
    ledger = _ledger_with_history(tmp_path / "ledger.db")
    database = Database(Settings(store="sqlite", sqlite_path=str(tmp_path / "read.db")))
    audit = AuditTrailProjection()
    runner = ProjectionRunner(ledger, database, [audit])
    events, _ = runner._read(0, 10)

    first = runner._apply_alone(audit, (events[:5], events[4].position), 0)
    with database.transaction() as tx:  # a rebuild elsewhere resets the position
        tx.execute("UPDATE projection_positions SET position = 0 WHERE name = 'audit'")
    second = runner._apply_alone(audit, (events[5:], events[-1].position), events[4].position)

    assert first == (events[4].position, 5)
    assert second is None
    assert runner.positions() == {"audit": 0}
    with database.transaction() as tx:
        assert tx.execute("SELECT COUNT(*) AS n FROM audit_trail")[0]["n"] == 5
    database.close()


class _CollectorWatchingAudit(AuditTrailProjection):
    """The audit trail, noting whether the cyclic garbage collector ran automatically
    while each batch was applied."""

    def __init__(self) -> None:
        self.collector_enabled: list[bool] = []

    def process(self, tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        self.collector_enabled.append(gc.isenabled())
        super().process(tx, events)


def test_a_catch_up_reading_ahead_pauses_the_cyclic_garbage_collector_and_restores_it(
    tmp_path: Path,
) -> None:
    ledger = _ledger_with_history(tmp_path / "ledger.db")
    database = Database(Settings(store="sqlite", sqlite_path=str(tmp_path / "read.db")))
    audit = _CollectorWatchingAudit()
    runner = ProjectionRunner(
        ledger, database, [audit], batch_size=7, read_ahead_from=1, catch_up_batch_size=5
    )
    assert gc.isenabled()

    runner.catch_up()

    assert audit.collector_enabled and not any(audit.collector_enabled)
    assert gc.isenabled()
    gc.disable()  # a process that runs without the collector keeps running without it
    try:
        with database.transaction() as tx:
            tx.execute("UPDATE projection_positions SET position = 0")
            tx.execute("DELETE FROM audit_trail")
        runner.catch_up()
        assert not gc.isenabled()
    finally:
        gc.enable()
    database.close()


def _index_names(tx: Transaction) -> set[str]:
    """The secondary indexes (SQLite's own for primary keys have no ``sql``)."""
    rows = tx.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    return {row["name"] for row in rows}


def _secondary_indexes(database: Database) -> set[str]:
    with database.transaction() as tx:
        return _index_names(tx)


class _Watched(AuditTrailProjection):
    """The audit trail, noting the secondary indexes present as it applies each batch,
    and failing at the batch ``fail_at`` if given."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.seen: list[set[str]] = []

    def apply(self, tx: Transaction, pending: object, events: Sequence[RecordedEvent]) -> None:
        self.seen.append(_index_names(tx))
        if len(self.seen) == self.fail_at:
            raise RuntimeError("the projection failed")
        super().apply(tx, pending, events)


def test_a_projection_replayed_from_its_first_event_builds_its_indexes_at_the_end(
    tmp_path: Path,
) -> None:
    ledger = _ledger_with_history(tmp_path / "ledger.db")
    database = Database(Settings(store="sqlite", sqlite_path=str(tmp_path / "read.db")))
    watched = _Watched()
    runner = ProjectionRunner(
        ledger,
        database,
        [watched],
        batch_size=4,
        read_ahead_from=1,
        catch_up_batch_size=4,
        catch_up_transaction_events=4,
    )
    built = _secondary_indexes(database)
    assert set(AuditTrailProjection.indexes) <= built

    runner.catch_up()

    assert len(watched.seen) > 1 and all(not seen & built for seen in watched.seen)
    assert _secondary_indexes(database) == built
    assert set(runner.positions().values()) == {ledger.recorder.max_notification_id()}
    with recorded_at(START + timedelta(days=30)):  # a follower already on its way keeps them
        ledger.add_person("rep2", "Rep 2", "sales_rep", "boss", actor="admin")
    watched.seen.clear()
    runner.read_ahead_from = 1
    runner.catch_up()
    assert watched.seen == [built]

    failing = _Watched(fail_at=2)
    again = ProjectionRunner(
        ledger,
        database,
        [failing],
        batch_size=4,
        read_ahead_from=1,
        catch_up_batch_size=4,
        catch_up_transaction_events=4,
    )
    with database.transaction() as tx:
        tx.execute("UPDATE projection_positions SET position = 0")
        tx.execute("DELETE FROM audit_trail")
    again.catch_up()  # reading ahead stops at the failure; catch-up goes on batch by batch
    assert len(failing.seen) == 2  # it failed on the second batch read ahead
    assert set(again.positions().values()) == {ledger.recorder.max_notification_id()}
    assert _secondary_indexes(database) == built  # built again, though it stopped early
    database.close()
