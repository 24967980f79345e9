"""The canonical encoding and the chains, without servers: pure functions, the embedded
store's write-time hashes, and checking published messages against the store."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.ledger import SalesLedger
from services.chain import GENESIS, canonical_encoding, event_hash, ledger_link
from services.integrity import ChainVerifier, Sealer
from services.kafka_verify import ConsumedMessage, compare, expected_messages
from services.settings import Settings
from tests.conftest import build_team

AGGREGATE = UUID("12345678-1234-5678-1234-567812345678")


def test_the_encoding_is_the_documented_one() -> None:
    encoded = canonical_encoding(AGGREGATE, 3, "a:B", b"{}")
    assert encoded == AGGREGATE.bytes + (3).to_bytes(8, "big") + (3).to_bytes(4, "big") + b"a:B{}"
    assert (
        event_hash(GENESIS, AGGREGATE, 3, "a:B", b"{}")
        == hashlib.sha256(GENESIS + encoded).digest()
    )
    assert (
        ledger_link(GENESIS, 7, b"h" * 32)
        == hashlib.sha256(GENESIS + (7).to_bytes(8, "big") + b"h" * 32).digest()
    )


@given(
    st.tuples(st.integers(1, 2**40), st.text(max_size=20), st.binary(max_size=40)),
    st.tuples(st.integers(1, 2**40), st.text(max_size=20), st.binary(max_size=40)),
)
def test_different_events_never_share_an_encoding(
    first: tuple[int, str, bytes], second: tuple[int, str, bytes]
) -> None:
    if first != second:
        assert canonical_encoding(AGGREGATE, *first) != canonical_encoding(AGGREGATE, *second)


@pytest.fixture
def ledger(tmp_path: Path) -> SalesLedger:
    app = SalesLedger(
        env=Settings(store="sqlite", sqlite_path=str(tmp_path / "l.db")).event_store_env()
    )
    build_team(app)
    customer = app.register_customer(name="Acme", source="web", actor="rep1")
    app.log_customer_activity(customer.aggregate_id, "call", "hello", actor="rep1")
    return app


def test_the_embedded_store_chains_each_event_at_write_time(ledger: SalesLedger) -> None:
    recorder: Any = ledger.recorder
    records = recorder.select_chained(0, 10_000, 10_000)
    previous: dict[UUID, bytes] = {}
    for record in records:
        expected = event_hash(
            previous.get(record.originator_id, GENESIS),
            record.originator_id,
            record.version,
            record.topic,
            record.state,
        )
        assert record.hash == expected
        previous[record.originator_id] = expected
    Sealer(recorder).seal()
    assert ChainVerifier(recorder).verify_range().ok


def test_published_messages_are_checked_against_the_store(ledger: SalesLedger) -> None:
    upto = ledger.recorder.max_notification_id() or 0
    expected = expected_messages(ledger, upto, "sales")
    consumed = [
        ConsumedMessage(m.topic, 0, offset, list(m.headers), m.value)
        for offset, m in enumerate(expected.values())
    ]
    assert compare(consumed, expected, upto).ok
    altered = consumed[1]
    tampered = [
        *consumed[:1],
        replace(altered, value=(altered.value or b"")[:-1] + b" }"),
        *consumed[2:],
    ]
    check = compare(tampered, expected, upto)
    assert not check.ok and check.altered[0][0] == sorted(expected)[1]
    dropped = compare(consumed[:-1], expected, upto)
    assert dropped.missing == [sorted(expected)[-1]]


def test_verification_reads_in_bounded_windows_with_the_same_answer(
    ledger: SalesLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny batches, seal windows and chain cache exercise every paging path."""
    import services.integrity as integrity

    recorder: Any = ledger.recorder
    Sealer(recorder, batch_size=3).seal()
    whole = ChainVerifier(recorder).verify_range()
    monkeypatch.setattr(integrity, "READ_BATCH", 2)
    monkeypatch.setattr(integrity, "CHAIN_CACHE", 1)
    monkeypatch.setattr(integrity.SealCursor, "WINDOW", 2)
    windowed = ChainVerifier(recorder).verify_range()
    assert whole.ok and windowed.ok, windowed.breaks
    assert (windowed.events, windowed.ledger_hash, windowed.sealed_upto) == (
        whole.events, whole.ledger_hash, whole.sealed_upto)
    assert ChainVerifier(recorder).verify_range(4, 7).ok


def _tamper(path: str, statement: str) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        for trigger in ("no_update", "no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS stored_events_{trigger}")
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "",
        "UPDATE stored_events SET state = substr(state, 2) WHERE rowid = 5",
        "DELETE FROM stored_events WHERE rowid = 6",
        "UPDATE stored_events SET hash = NULL WHERE rowid = 3",
        "UPDATE ledger_seals SET ledger_hash = zeroblob(32) WHERE upto_position = 6",
    ],
)
def test_the_bulk_check_reports_what_the_event_by_event_check_reports(
    tmp_path: Path, ledger: SalesLedger, statement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch checked in bulk, or every batch checked event by event: one report."""
    import services.integrity as integrity
    from services.range_verification import RangeVerification

    recorder: Any = ledger.recorder
    Sealer(recorder, batch_size=3).seal()
    if statement:
        _tamper(str(tmp_path / "l.db"), statement)
    monkeypatch.setattr(integrity, "READ_BATCH", 4)
    bulk = ChainVerifier(recorder).verify_range(keep_statuses=True)
    monkeypatch.setattr(RangeVerification, "_verify_clean", lambda self, rows: False)
    exact = ChainVerifier(recorder).verify_range(keep_statuses=True)
    assert bulk == exact
    assert bulk.ok == (not statement)
