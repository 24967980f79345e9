"""Import from another CRM: the demo's own history, exported to CSV and imported into an
empty ledger, gives the same funnel, conversion figures and pipeline changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregates.audit_log import AuditLog, audit_log_id
from commands.ledger import SalesLedger
from events.base import recorded_at
from events.opportunity import OpportunityLost
from projections.conversion import query_conversion
from projections.funnel import FunnelFilter, fold_funnel_as_of, query_funnel
from projections.pipeline_changes import PipelineChanges, pipeline_changes
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.analytics.events import recorded_events
from services.claims_audit import audit_claims
from services.cli import main
from services.demo import DemoBuilder
from services.importing.crm import imported_id, run_import
from services.importing.export import export_crm
from services.read_store import open_read_store
from services.settings import Settings
from tests.conftest import create_database, drop_database, wait_for_read_horizon


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Settings, Settings]]:
    yield (
        Settings(store="sqlite", sqlite_path=str(tmp_path / "source.db")),
        Settings(store="sqlite", sqlite_path=str(tmp_path / "target.db")),
    )


@pytest.fixture
def postgres_stores() -> Iterator[tuple[Settings, Settings]]:
    """Two brand-new PostgreSQL databases, dropped afterwards."""
    names = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        create_database(name)
    yield (
        Settings(store="postgres", postgres_dbname=names[0]),
        Settings(store="postgres", postgres_dbname=names[1]),
    )
    for name in names:
        drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def both_stores(request: pytest.FixtureRequest) -> tuple[Settings, Settings]:
    found: tuple[Settings, Settings] = request.getfixturevalue(
        "stores" if request.param == "sqlite" else "postgres_stores"
    )
    return found


def _copy_organisation(source: SalesLedger, target: SalesLedger) -> None:
    org = source.organisation()
    people = sorted(org.people.values(), key=lambda p: len(org.chain_above(p.person_id)))
    admin = next(p for p in people if p.role == "admin")
    with recorded_at(datetime(2025, 12, 1, tzinfo=UTC)):
        target.set_up_organisation("Imported Co", admin.person_id, admin.name)
        for person in people:
            if person.person_id != admin.person_id:
                target.add_person(
                    person.person_id,
                    person.name,
                    person.role,
                    person.manager_id,
                    actor=admin.person_id,
                )


def _project(ledger: SalesLedger, settings: Settings) -> Any:
    database = open_read_store(settings)
    ProjectionRunner(ledger, database, all_projections()).catch_up()
    return database


def _figures(report: PipelineChanges) -> list[tuple[Any, ...]]:
    return [
        (report.start.count, report.start.amount, report.start.weighted_amount),
        *((s.step, s.count, s.amount, s.weighted_amount, len(s.deals)) for s in report.steps),
        (report.end.count, report.end.amount, report.end.weighted_amount),
        (len(report.pushed), sum(m.times for m in report.pushed), len(report.owner_changes)),
    ]


def test_the_demo_exported_and_imported_answers_the_same(
    both_stores: tuple[Settings, Settings], tmp_path: Path
) -> None:
    stores = both_stores
    source = SalesLedger(env=stores[0].event_store_env())
    DemoBuilder(source, customers=30, opportunities=150, days=150, progress=False).build()
    files = export_crm(source, tmp_path / "export")
    target = SalesLedger(env=stores[1].event_store_env())
    _copy_organisation(source, target)

    reports = run_import(target, "admin", files, progress=False)

    assert [r.problems for r in reports] == [[], [], []]
    assert all(r.written for r in reports)
    wait_for_read_horizon(target)
    before, after = _project(source, stores[0]), _project(target, stores[1])
    assert query_funnel(before).open_count > 0 and query_funnel(before).stages[-1].count > 0
    assert query_funnel(after) == query_funnel(before)
    q2 = FunnelFilter(close_from=date(2026, 4, 1), close_to=date(2026, 6, 30))
    assert query_funnel(after, q2) == query_funnel(before, q2)
    assert query_conversion(after) == query_conversion(before)
    start = datetime(2026, 2, 1, tzinfo=UTC)
    for t1, t2 in ((start, start + timedelta(days=30)), (start, start + timedelta(days=90))):
        for scope in (FunnelFilter(), q2, FunnelFilter(region="north")):
            imported = pipeline_changes(recorded_events(target), t1, t2, scope)
            original = pipeline_changes(recorded_events(source), t1, t2, scope)
            assert _figures(imported) == _figures(original)
    month = pipeline_changes(recorded_events(target), start, start + timedelta(days=30))
    assert sum(len(s.deals) for s in month.steps) > 10
    moment = start + timedelta(days=45)
    assert fold_funnel_as_of(target, moment) == fold_funnel_as_of(source, moment)
    log = target.load(AuditLog, audit_log_id("admin", datetime.now(UTC).date()))
    assert [kind for kind, _, _ in log.imports] == ["customers", "opportunities", "history"]
    first_deal = files["opportunities"].read_text().splitlines()[1].split(",")[0]
    deal_events = list(target.stored_events(imported_id("opportunity", first_deal)))
    reasons = [  # a revision's reason names the file and line (a loss's reason is the loss's)
        str(getattr(e, "reason", "")) for e in deal_events
        if getattr(e, "reason", None) and not isinstance(e, OpportunityLost)
    ]
    assert reasons and all("imported from opportunity_history.csv line" in r for r in reasons)
    for ledger in (source, target):  # the demo's claims and the import's: all from events
        claims = audit_claims(ledger)
        assert claims.ok and claims.claims > 100, claims.breaks[:3]


def test_a_second_import_changes_nothing_and_a_bad_file_is_refused_whole(
    stores: tuple[Settings, Settings], tmp_path: Path
) -> None:
    source = SalesLedger(env=stores[0].event_store_env())
    DemoBuilder(source, customers=8, opportunities=20, days=40, progress=False).build()
    files = export_crm(source, tmp_path / "export")
    target = SalesLedger(env=stores[1].event_store_env())
    _copy_organisation(source, target)
    run_import(target, "admin", files, progress=False)
    written = target.recorder.max_notification_id()

    again = run_import(target, "admin", files, progress=False)

    assert target.recorder.max_notification_id() == written
    assert all(r.imported == 0 and r.already_imported == r.rows for r in again)
    bad = tmp_path / "bad.csv"
    lines = files["opportunities"].read_text().splitlines()
    header = lines[0]
    bad.write_text(
        "\n".join(
            [
                header,
                "o-1,no-such-customer,rep-north-1,Deal,web,100,2026-05-01,erp,north,2026-02-01T00:00:00Z",
                f"o-2,{lines[1].split(',')[1]},rep-north-1,Deal,web,ten,2026-05-01,erp,north,2026-02-01",
                f"o-3,{lines[1].split(',')[1]},rep-north-1,Deal,web,100,2026-05-01,erp,north,2026-02-01",
                f"o-4,{lines[1].split(',')[1]},rep-north-1,Bell\x07,web,9,2026-05-01,erp,north,2026-02-01",
            ]
        )
        + "\n"
    )
    dry = run_import(target, "admin", {"opportunities": bad}, dry_run=True, progress=False)[0]
    real = run_import(target, "admin", {"opportunities": bad}, progress=False)[0]

    assert [(p.line, p.field) for p in dry.problems] == [
        (2, "AccountId"),
        (3, "Amount"),
        (5, "title"),
    ]
    assert dry.imported == 1 and not dry.written
    assert real.problems == dry.problems and not real.written
    assert target.recorder.max_notification_id() == written


def test_the_cli_exports_dry_runs_and_imports(
    stores: tuple[Settings, Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = SalesLedger(env=stores[0].event_store_env())
    DemoBuilder(source, customers=5, opportunities=10, days=20, progress=False).build()
    target = SalesLedger(env=stores[1].event_store_env())
    _copy_organisation(source, target)
    monkeypatch.setenv("LEDGER_STORE", "sqlite")
    monkeypatch.setenv("LEDGER_SQLITE_PATH", str(stores[0].sqlite_path))
    assert main(["export-crm", str(tmp_path / "out")]) == 0
    monkeypatch.setenv("LEDGER_SQLITE_PATH", str(stores[1].sqlite_path))
    files = [
        *("--customers", str(tmp_path / "out" / "customers.csv")),
        *("--opportunities", str(tmp_path / "out" / "opportunities.csv")),
        *("--history", str(tmp_path / "out" / "opportunity_history.csv")),
    ]
    capsys.readouterr()

    assert main(["import", "--actor", "admin", "--dry-run", "--quiet", *files]) == 0
    dry = capsys.readouterr().out
    assert main(["import", "--actor", "admin", "--quiet", *files]) == 0
    real = capsys.readouterr().out

    assert "not written" in dry and "; imported" not in dry
    assert real.count("; imported") == 3 and "rows/s" in real
    assert (
        target.recorder.max_notification_id()
        and main(["import", "--actor", "rep-north-1", "--quiet", *files]) == 1
    )
