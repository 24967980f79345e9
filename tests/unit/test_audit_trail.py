"""The audit trail: its narrow rows index the ledger's own events by actor and by day;
queries read the events from the store at the positions found."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.ledger import SalesLedger
from events.base import recorded_at
from projections.audit import AuditTrailProjection, query_audit_trail
from projections.runner import SCHEMAS_TABLE, ProjectionRunner
from services.bootstrap import build_ledger
from services.database import Database, copy_escaped, copy_unescaped
from services.settings import Settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SalesLedger]:
    ledger = build_ledger(Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db")))
    with recorded_at(T0 - timedelta(days=10)):
        ledger.set_up_organisation("Co", "admin", "Admin")
        ledger.add_person("boss", "Boss", "manager", None, actor="admin")
        ledger.add_person("rep", "Rep", "sales_rep", "boss", actor="admin")
        ledger.add_person("rep2", "Rep 2", "sales_rep", "boss", actor="admin")
    yield ledger
    ledger.close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db")))
    yield db
    db.close()


def _open(ledger: SalesLedger, owner: str, at: datetime) -> str:
    with recorded_at(at):
        customer = ledger.register_customer(
            name=f"Customer of {owner} {at}", source="web", owner_id=owner, actor="boss"
        ).aggregate_id
        return ledger.open_opportunity(
            customer_id=customer,
            owner_id=owner,
            title="deal",
            source="web",
            amount=Decimal("1000"),
            expected_close=date(2026, 6, 30),
            product="arm",
            region="east",
            actor=owner,
        ).aggregate_id


def _project(ledger: SalesLedger, database: Database) -> None:
    ProjectionRunner(ledger, database, [AuditTrailProjection()]).catch_up()


def test_the_trail_filters_by_aggregate_actor_and_time(
    ledger: SalesLedger, database: Database
) -> None:
    a = _open(ledger, "rep", T0)
    b = _open(ledger, "rep2", T0 + timedelta(days=1))
    with recorded_at(T0 + timedelta(days=2)):
        ledger.add_team_member(a, "rep2", "support", actor="rep")
    _project(ledger, database)

    by_aggregate = query_audit_trail(database, ledger, aggregate_id=a).items
    by_actor = query_audit_trail(database, ledger, actor="rep2").items
    in_range = query_audit_trail(
        database, ledger, since=T0 + timedelta(hours=1), until=T0 + timedelta(days=1, hours=1)
    ).items

    assert [e.event_type for e in by_aggregate] == ["OpportunityOpened", "TeamMemberAdded"]
    assert by_aggregate[0].changes["amount"] == "1000"
    assert by_aggregate[0].aggregate_type == "opportunity"
    assert [e.version for e in by_aggregate] == [1, 2]
    assert [(e.aggregate_id, e.event_type) for e in by_actor] == [(b, "OpportunityOpened")]
    assert [e.event_type for e in in_range] == ["CustomerRegistered", "OpportunityOpened"]
    assert {e.recorded_at[:10] for e in in_range} == {"2026-03-03"}


def test_time_bounds_are_exact_within_a_day(ledger: SalesLedger, database: Database) -> None:
    _open(ledger, "rep", T0)
    _open(ledger, "rep2", T0 + timedelta(hours=3))
    _project(ledger, database)

    page = query_audit_trail(
        database, ledger, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3)
    )
    aggregate_filtered = query_audit_trail(
        database, ledger, aggregate_id=page.items[-1].aggregate_id, since=T0 + timedelta(hours=4)
    )

    assert [e.actor for e in page.items] == ["boss", "rep2"]
    assert aggregate_filtered.items == []


def test_pages_follow_on_without_gaps(ledger: SalesLedger, database: Database) -> None:
    for n in range(5):
        _open(ledger, "rep", T0 + timedelta(hours=n))
    _project(ledger, database)
    everything = query_audit_trail(database, ledger, limit=1000).items

    seen, after = [], 0
    while True:
        page = query_audit_trail(database, ledger, after=after, limit=3)
        seen.extend(page.items)
        if page.next_after is None:
            break
        after = page.next_after

    assert [e.position for e in seen] == [e.position for e in everything]
    assert len(everything) == len(set(e.position for e in everything)) > 10


def test_an_unknown_or_malformed_aggregate_id_gives_an_empty_page(
    ledger: SalesLedger, database: Database
) -> None:
    _open(ledger, "rep", T0)
    _project(ledger, database)

    assert query_audit_trail(database, ledger, aggregate_id="not-a-uuid").items == []
    assert (
        query_audit_trail(
            database, ledger, aggregate_id="00000000-0000-0000-0000-000000000000"
        ).items
        == []
    )


def test_a_projection_whose_tables_changed_is_rebuilt(
    ledger: SalesLedger, database: Database
) -> None:
    _open(ledger, "rep", T0)
    _project(ledger, database)
    with database.transaction() as tx:  # as an older version would have left it
        tx.execute(f"UPDATE {SCHEMAS_TABLE} SET fingerprint = 'older' WHERE name = 'audit'")
        tx.execute("DROP TABLE audit_trail")
        tx.execute("CREATE TABLE audit_trail (position BIGINT PRIMARY KEY, changes TEXT)")

    runner = ProjectionRunner(ledger, database, [AuditTrailProjection()])
    assert runner.positions() == {"audit": 0}
    runner.catch_up()

    assert len(query_audit_trail(database, ledger).items) == ledger.recorder.max_notification_id()


@given(st.lists(st.lists(st.text(), min_size=3, max_size=3), max_size=5))
def test_copy_text_escapes_and_unescapes_any_text(rows: list[list[str]]) -> None:
    text = "".join("\t".join(copy_escaped(v) for v in row) + "\n" for row in rows)

    parsed = [[copy_unescaped(v) for v in line.split("\t")] for line in text.split("\n")[:-1]]

    assert parsed == rows
