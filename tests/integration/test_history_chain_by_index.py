"""A deal's history reads the seals' hashes of its own positions only (by index, the
server cutting each hash out of its seal), and finds what reading every seal found:
in a seal without gaps, in one with gaps (positions that never held an event), and
after an event was forged into a gap or a sealed event's hash was rewritten."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from services.integrity import ChainVerifier
from services.settings import Settings
from tests.integration.test_integrity_tamper import TamperedStore


@pytest.fixture
def store(store_settings: Settings) -> Iterator[TamperedStore]:
    tampered = TamperedStore(store_settings)
    yield tampered
    tampered.ledger.close()


def _every_seal(store: TamperedStore, positions: list[int]) -> dict[int, bytes]:
    """What the history read before: every seal, unpacked."""
    sealed: dict[int, bytes] = {}
    for seal in store.ledger.recorder.select_seals():  # type: ignore[attr-defined]
        sealed.update(zip(seal.positions, seal.event_hashes, strict=True))
    return {p: sealed[p] for p in positions if p in sealed}


def _positions(store: TamperedStore, deal: str) -> list[int]:
    records = store.ledger.recorder.select_aggregate_chain(UUID(deal))  # type: ignore[attr-defined]
    return [record.position for record in records]


def test_sealed_hashes_by_index_equal_those_of_every_seal(store: TamperedStore) -> None:
    recorder = store.ledger.recorder
    for deal in store.deals:
        positions = _positions(store, deal)
        sealed_upto, found = recorder.select_sealed_hashes(positions)  # type: ignore[attr-defined]
        assert found == _every_seal(store, positions)
        assert len(found) == len(positions) == 3
        assert sealed_upto == recorder.last_seal().upto_position  # type: ignore[attr-defined]
    assert recorder.select_sealed_hashes([]) == (sealed_upto, {})  # type: ignore[attr-defined]
    beyond = (recorder.max_notification_id() or 0) + 10
    assert recorder.select_sealed_hashes([beyond]) == (sealed_upto, {})  # type: ignore[attr-defined]


def test_a_rewritten_hash_and_a_forged_event_show_in_the_history(store: TamperedStore) -> None:
    deal = UUID(store.deals[0])
    records = store.ledger.recorder.select_aggregate_chain(deal)  # type: ignore[attr-defined]
    rewritten = store.position_of(store.deals[0], 2)
    column = "notification_id" if store.settings.store == "postgres" else "rowid"
    store.execute(
        f"UPDATE {{table}} SET state = %s, hash = %s WHERE {column} = %s",
        (records[1].state.replace(b"first visit", b"other visit"), records[2].hash, rewritten),
    )
    forged = store.burned[0]
    last = records[-1]
    key = deal if store.settings.store == "postgres" else deal.hex
    store.execute(
        f"INSERT INTO {{table}} (originator_id, originator_version, topic, state, {column}, "
        "hash) VALUES (%s, %s, %s, %s, %s, %s)",
        (key, last.version + 1, last.topic, last.state, forged, last.hash),
    )
    report = ChainVerifier(store.ledger.recorder).verify_aggregate(deal)  # type: ignore[arg-type]
    assert report.version_statuses[1] == "ok"
    assert report.version_statuses[2] != "ok"
    assert report.statuses[forged] != "ok"
    assert "unsealed event" in {b.kind for b in report.breaks if b.position == forged}
