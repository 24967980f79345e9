"""Projection workers on real PostgreSQL, running as their own process (`salesledger project`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.funnel import LAST_OPEN_STAGE
from commands.ledger import SalesLedger
from events.base import recorded_at
from projections.audit import query_audit_trail
from projections.funnel import FUNNEL_TOPICS, FunnelProjection
from projections.registry import all_projections, projection_names
from projections.runner import ProjectionRunner
from services.bootstrap import build_ledger
from services.database import Database
from services.settings import Settings
from tests.conftest import create_database, drop_database, wait_for_read_horizon

pytestmark = pytest.mark.integration

WRITERS = 8
COMMANDS_PER_WRITER = 40
CLI = [sys.executable, "-m", "services.cli"]
"""``salesledger``, as a child process."""


def server_env() -> dict[str, str]:
    """Connection settings from the environment the test runner exports."""
    return {
        "POSTGRES_HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        "POSTGRES_PORT": os.environ.get("POSTGRES_PORT", "55432"),
        "POSTGRES_USER": os.environ.get("POSTGRES_USER", "ledger"),
        "POSTGRES_PASSWORD": os.environ.get("POSTGRES_PASSWORD", "ledger"),
        "POSTGRES_DBNAME": os.environ.get("POSTGRES_DBNAME", "ledger_test"),
    }


@pytest.fixture
def fresh_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A new, empty database for one test; its environment is set for this process too."""
    env = server_env()
    name = f"projections_{uuid.uuid4().hex[:12]}"
    create_database(name)  # fails, not skips, if PostgreSQL is unreachable
    test_env = {**env, "POSTGRES_DBNAME": name, "LEDGER_STORE": "postgres"}
    for key, value in test_env.items():
        monkeypatch.setenv(key, value)
    yield test_env
    drop_database(name)


def start_worker(env: dict[str, str], processes: int = 2) -> subprocess.Popen[bytes]:
    """``salesledger project``: by default its projections spread over two worker
    processes (the funnel's reading only its topics)."""
    return subprocess.Popen(
        [*CLI, "project", "--poll-interval", "0.2", "--processes", str(processes)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            if int(fields[1]) == pid:
                children.append(int(entry))
    return children


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def wait_until_projected(database: Database, position: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with database.transaction() as tx:
                rows = tx.execute("SELECT name, position FROM projection_positions")
        except psycopg.errors.UndefinedTable:
            rows = []
        reached = {row["name"]: int(row["position"]) for row in rows}
        if all(reached.get(name, 0) >= position for name in projection_names()):
            return
        time.sleep(0.1)
    raise AssertionError(f"projections did not reach {position}: {reached}")


def set_up(ledger: SalesLedger) -> None:
    ledger.set_up_organisation("Co", "admin", "Admin")
    ledger.add_person("boss", "Boss", "manager", None, actor="admin")
    for n in range(WRITERS):
        ledger.add_person(f"rep{n}", f"Rep {n}", "sales_rep", "boss", actor="admin")


def open_deal(ledger: SalesLedger, owner: str, n: int) -> int | None:
    customer = ledger.register_customer(
        name=f"{owner} customer {n}", source="web", owner_id=owner, actor=owner
    )
    deal = ledger.open_opportunity(
        customer_id=customer.aggregate_id,
        owner_id=owner,
        title=f"deal {n}",
        source="web",
        amount=Decimal(1000),
        expected_close=date(2026, 6, 30),
        product="arm",
        region="east",
        actor=owner,
    )
    return deal.position


def projected_positions(database: Database) -> list[int]:
    with database.transaction() as tx:
        return [
            int(r["position"])
            for r in tx.execute("SELECT position FROM audit_trail ORDER BY position")
        ]


def all_event_positions(ledger: SalesLedger) -> list[int]:
    """The full log, read straight from the event store once all of it is readable."""
    wait_for_read_horizon(ledger)
    positions: list[int] = []
    while batch := ledger.recorder.select_notifications(
        positions[-1] if positions else None, 10_000, inclusive_of_start=False
    ):
        positions.extend(n.id for n in batch)
    return positions


def test_a_separate_worker_process_follows_and_resumes_after_a_restart(
    fresh_database: dict[str, str],
) -> None:
    settings = Settings()
    ledger = build_ledger(settings)
    database = Database(settings)
    set_up(ledger)
    worker = start_worker(fresh_database)
    try:
        for n in range(5):
            open_deal(ledger, "rep0", n)
        deal = opportunity_ids(ledger)[-1]
        # The last event is none of the funnel's: its worker, reading only its own
        # topics, still moves past it (read your writes on the funnel).
        last = ledger.log_opportunity_activity(deal, "call", "called", actor="rep0").position
        assert last is not None
        wait_until_projected(database, last)
        workers = children_of(worker.pid)
        assert len(workers) == 2
    finally:
        stop_worker(worker)
    assert worker.returncode == 0
    assert not any(is_running(pid) for pid in workers)
    for n in range(5, 10):
        last = open_deal(ledger, "rep1", n)
    assert last is not None
    worker = start_worker(fresh_database)
    try:
        wait_until_projected(database, last)
    finally:
        stop_worker(worker)

    assert projected_positions(database) == all_event_positions(ledger)
    with database.transaction() as tx:
        counts = tx.execute("SELECT COUNT(*) AS n FROM funnel_opportunities")[0]["n"]
    assert counts == 10
    database.close()


def test_a_follower_sees_every_event_with_many_concurrent_writers(
    fresh_database: dict[str, str],
) -> None:
    settings = Settings()
    ledger = build_ledger(settings)
    database = Database(settings)
    set_up(ledger)
    worker = start_worker(fresh_database)
    errors: list[BaseException] = []

    def write(owner: str) -> None:
        try:
            for n in range(COMMANDS_PER_WRITER // 2):
                open_deal(ledger, owner, n)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    try:
        threads = [threading.Thread(target=write, args=(f"rep{n}",)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        events = all_event_positions(ledger)
        wait_until_projected(database, events[-1])
    finally:
        stop_worker(worker)

    assert projected_positions(database) == events
    assert len(events) == 3 + WRITERS + WRITERS * COMMANDS_PER_WRITER
    database.close()


def deals_for_the_command_line(fresh_database: dict[str, str]) -> tuple[Database, dict[str, str]]:
    """Five deals of two reps in the fresh database; its read store and the environment
    for ``salesledger`` child processes on it."""
    settings = Settings()
    ledger = build_ledger(settings)
    set_up(ledger)
    for n in range(5):
        open_deal(ledger, f"rep{n % 2}", n)
    return Database(settings), {**os.environ, **fresh_database}


def test_rebuild_from_the_command_line_gives_the_same_rows(
    fresh_database: dict[str, str],
) -> None:
    database, env = deals_for_the_command_line(fresh_database)
    subprocess.run([*CLI, "project", "--once"], env=env, check=True, capture_output=True)
    before = dump(database)
    with database.transaction() as tx:  # what a rebuild must replace, not add to
        tx.execute("DELETE FROM funnel_opportunities")
        tx.execute(
            "INSERT INTO audit_trail SELECT position + 1000, actor, recorded_at, "
            "recorded_day FROM audit_trail"
        )
    for processes in ("2", "1", "3"):
        rebuilt = subprocess.run(
            [*CLI, "rebuild", "--in-place", "--processes", processes],
            env=env,
            capture_output=True,
            text=True,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "rebuilt funnel, forecasts, plans, monitoring, audit" in rebuilt.stdout
        assert dump(database) == before
    one = subprocess.run(
        [*CLI, "rebuild", "funnel", "--in-place", "--processes", "2"],
        env=env, capture_output=True, text=True,
    )
    assert one.returncode == 0 and "rebuilt funnel from" in one.stdout  # one group: in-process
    assert dump(database) == before
    beside = subprocess.run([*CLI, "rebuild"], env=env, capture_output=True, text=True)
    assert "beside the live tables, and switched to them" in beside.stdout, beside.stderr
    assert dump(database) == before
    database.close()


def test_projections_split_over_worker_processes_give_the_rows_of_one_worker(
    fresh_database: dict[str, str], tmp_path: Path
) -> None:
    database, env = deals_for_the_command_line(fresh_database)
    only = [*CLI, "project", "--once", "--only"]
    workers = [
        subprocess.Popen([*only, "funnel", "forecasts"], env=env),
        subprocess.Popen([*only, "plans", "monitoring", "audit", "lists"], env=env),
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    split = dump(database)
    assert split["funnel_opportunities"] and split["audit_trail"]
    rebuilt = subprocess.run([*CLI, "rebuild"], env=env, capture_output=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert dump(database) == split
    refused = subprocess.run([*only, "funnel", "fun"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "unknown projections ['fun']" in refused.stdout
    for processes in ("2", "3", "5"):  # spread by the command itself
        with database.transaction() as tx:  # a cold start
            for projection in all_projections():
                projection.drop_tables(tx)
            tx.execute("DROP TABLE projection_positions, projection_schemas")
        spread = subprocess.run(
            [*CLI, "project", "--once", "--processes", processes],
            env=env,
            capture_output=True,
            text=True,
        )
        assert spread.returncode == 0, spread.stderr
        assert spread.stdout.count("applied") == int(processes)
        assert dump(database) == split
    sqlite = {**env, "LEDGER_STORE": "sqlite", "LEDGER_SQLITE_PATH": str(tmp_path / "l.db")}
    refused = subprocess.run(
        [*CLI, "project", "--once", "--processes", "2"], env=sqlite, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "only with LEDGER_STORE=postgres" in refused.stderr
    database.close()


@contextmanager
def a_worker_with_one_deal_projected(
    env: dict[str, str],
) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """``salesledger project`` (two worker processes) on a ledger with one deal, once
    the deal is projected: the command's process and its workers' ids. Stopped at the
    end if it still runs."""
    settings = Settings()
    ledger = build_ledger(settings)
    database = Database(settings)
    set_up(ledger)
    last = open_deal(ledger, "rep0", 0)
    assert last is not None
    worker = start_worker(env)
    try:
        wait_until_projected(database, last)
        workers = children_of(worker.pid)
        assert len(workers) == 2
        yield worker, workers
    finally:
        stop_worker(worker)
        database.close()


def test_a_worker_process_that_dies_stops_the_others_and_the_command_fails(
    fresh_database: dict[str, str],
) -> None:
    with a_worker_with_one_deal_projected(fresh_database) as (worker, (first, second)):
        os.kill(first, signal.SIGKILL)
        assert worker.wait(timeout=30) == 128 + signal.SIGKILL
    assert not is_running(second)


def test_worker_processes_end_when_their_parent_is_killed(
    fresh_database: dict[str, str],
) -> None:
    with a_worker_with_one_deal_projected(fresh_database) as (worker, workers):
        worker.kill()  # no chance to stop its workers itself
        worker.wait()
        deadline = time.monotonic() + 20
        while any(is_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(is_running(pid) for pid in workers)


def test_projections_reading_ahead_in_threads_give_the_rows_of_batch_by_batch(
    fresh_database: dict[str, str],
) -> None:
    """The catch-up's path (every projection in its own thread and transactions, upserts
    staged through COPY) against one transaction per batch, batches cutting through deals."""
    settings = Settings()
    ledger = build_ledger(settings)
    database = Database(settings)
    with recorded_at(datetime(2026, 1, 2, 9, tzinfo=UTC)):  # deals that close in March
        set_up(ledger)
        for n in range(6):
            open_deal(ledger, f"rep{n % 2}", n)
    criteria = {criterion: True for criterion in QUALIFICATION_CRITERIA}
    deals = opportunity_ids(ledger)
    assert len(deals) == 6
    for n, deal in enumerate(deals):
        ledger.qualify_opportunity(deal, criteria, actor="boss")
        ledger.advance_stage(deal, 2 + n % 3, "progress", actor="boss")
        if n % 2:
            ledger.advance_stage(deal, LAST_OPEN_STAGE, "progress", actor="boss")
            ledger.win_opportunity(deal, Decimal("900.50"), date(2026, 3, 1), actor="boss")
    for deal in deals[0::2][:2]:  # open deals; the log ends with events not the funnel's
        ledger.log_opportunity_activity(deal, "call", "called", actor="boss")
    last = all_event_positions(ledger)[-1]
    batch_by_batch = ProjectionRunner(
        ledger, database, all_projections(), batch_size=3, read_ahead_from=10**9
    )
    assert batch_by_batch.catch_up() == last
    expected = dump(database)
    reading_ahead = ProjectionRunner(
        ledger,
        database,
        all_projections(),
        batch_size=3,
        read_ahead_from=1,
        catch_up_batch_size=4,
    )
    assert reading_ahead.rebuild() == last
    assert dump(database) == expected
    assert set(reading_ahead.positions().values()) == {last}
    assert reading_ahead.rebuild(["funnel"]) == last  # the others, up to date, stay idle
    assert dump(database) == expected
    assert set(reading_ahead.positions().values()) == {last}
    funnel_alone = ProjectionRunner(
        ledger,
        database,
        [FunnelProjection()],
        batch_size=3,
        read_ahead_from=1,
        catch_up_batch_size=4,
    )
    assert funnel_alone.topics == tuple(sorted(FUNNEL_TOPICS))
    funnel_events = sum(topic in FUNNEL_TOPICS for topic in all_event_topics(ledger))
    assert funnel_alone.rebuild() == funnel_events  # it reads only its own
    assert dump(database) == expected
    assert funnel_alone.positions() == {"funnel": last}
    database.close()


def all_event_topics(ledger: SalesLedger) -> list[str]:
    wait_for_read_horizon(ledger)
    return [n.topic for n in ledger.recorder.select_notifications(None, 10_000)]


def opportunity_ids(ledger: SalesLedger) -> list[str]:
    wait_for_read_horizon(ledger)
    return [
        str(n.originator_id)
        for n in ledger.recorder.select_notifications(None, 10_000, inclusive_of_start=False)
        if n.topic.endswith("OpportunityOpened")
    ]


def dump(database: Database) -> dict[str, list[tuple[str, ...]]]:
    result = {}
    with database.transaction() as tx:
        for projection in all_projections():
            for table in projection.tables:
                rows = tx.execute(f"SELECT * FROM {table}")
                result[table] = sorted(tuple(str(v) for v in row.values()) for row in rows)
    return result


def test_the_audit_trail_copies_awkward_actor_names_exactly(
    fresh_database: dict[str, str],
) -> None:
    ledger = build_ledger(Settings())
    ledger.set_up_organisation("Co", "admin", "Admin")
    # (a carriage return is refused at the event boundary, events/limits.py)
    awkward = ["tab\there", "new\nline", "back\\slash", "\\N", "plain"]
    for person in awkward:
        ledger.add_person(person, person, "manager", None, actor="admin")
        ledger.register_customer(name=f"Customer of {person!r}", source="web", actor=person)
    database = Database(Settings())
    runner = ProjectionRunner(ledger, database, all_projections(), read_ahead_from=1)
    runner.catch_up()

    with database.transaction() as tx:
        actors = {row["actor"] for row in tx.execute("SELECT actor FROM audit_trail")}
    by_actor = {
        person: [e.event_type for e in query_audit_trail(database, ledger, actor=person).items]
        for person in awkward
    }

    assert actors == {"system", "admin", *awkward}
    assert by_actor == {person: ["CustomerRegistered"] for person in awkward}
    database.close()
    ledger.close()
