"""One append holding several aggregates' events interleaved (as an import of a CRM's
history does) chains each event onto its own aggregate's previous one, wherever that
stands in the batch: verification passes on both stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.projections import synthetic_events
from commands.ledger import SalesLedger
from services.bootstrap import build_ledger
from services.integrity import ChainVerifier, Sealer
from services.settings import Settings


@pytest.fixture
def ledger(store_settings: Settings) -> Iterator[SalesLedger]:
    ledger = build_ledger(store_settings)
    ledger.set_up_organisation("Batch Co", "admin", "Ada")
    ledger.add_person("mgr0", "Meg", "manager", None, actor="admin")
    ledger.add_person("rep0-0", "Ray", "sales_rep", "mgr0", actor="admin")
    yield ledger
    ledger.close()


def test_interleaved_events_of_several_aggregates_in_one_append_verify(
    ledger: SalesLedger,
) -> None:
    events = list(synthetic_events(6, 60, order="time"))
    ids = [e.originator_id for e in events]
    interleaved = any(
        ids[i] != ids[i - 1] and ids[i] in ids[: i - 1] for i in range(1, len(ids))
    )
    assert interleaved, "the batch must interleave aggregates to test anything"

    ledger.recorder.insert_events([ledger.mapper.to_stored_event(e) for e in events])
    Sealer(ledger.recorder).seal()  # type: ignore[arg-type]
    report = ChainVerifier(ledger.recorder).verify_range()  # type: ignore[arg-type]

    assert report.ok, report.first_break
    assert report.events >= len(events)
