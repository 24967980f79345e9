"""Property: projections maintained batch by batch equal a rebuild from event 1."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregates.errors import DomainError
from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.funnel import LAST_OPEN_STAGE
from aggregates.opportunity import Opportunity, Qualification
from commands.ledger import SalesLedger
from events.base import recorded_at
from projections.funnel import (
    FunnelFilter,
    fold_funnel_as_of,
    funnel_from_deals,
    query_funnel,
    query_funnel_as_of,
)
from projections.registry import all_projections, projection_names, spread_over_processes
from projections.runner import ProjectionRunner
from services.bootstrap import build_ledger
from services.database import Database
from services.settings import Settings

PEOPLE = ("boss", "rep", "rep2")
ALL_MET = {criterion: True for criterion in QUALIFICATION_CRITERIA}
NONE_MET = {criterion: False for criterion in QUALIFICATION_CRITERIA}
FILTERS = (
    FunnelFilter(),
    FunnelFilter(owner_ids={"rep"}),
    FunnelFilter(region="east"),
    FunnelFilter(source="referral", product="arm"),
    FunnelFilter(region="west", close_from=date(2026, 4, 1), close_to=date(2026, 6, 30)),
    FunnelFilter(close_from=date(2026, 3, 1), close_to=date(2026, 3, 31)),
    FunnelFilter(close_from=date(2026, 2, 9), close_to=date(2026, 2, 15)),
    FunnelFilter(close_from=date(2026, 3, 1), close_to=date(2026, 3, 1)),
    FunnelFilter(owner_ids={"rep2"}, region="west"),
    FunnelFilter(
        owner_ids={"rep", "rep2"}, close_from=date(2026, 1, 1), close_to=date(2026, 6, 30)
    ),
)
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

operation = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(PEOPLE + (None,))),
    st.tuples(st.just("win"), st.integers(0, 9)),
    st.tuples(st.just("open"), st.integers(0, 5), st.sampled_from(PEOPLE[1:])),
    st.tuples(st.just("open"), st.integers(0, 5), st.sampled_from(PEOPLE[1:])),
    st.tuples(st.just("advance"), st.integers(0, 9), st.integers(1, 7)),
    st.tuples(st.just("qualify"), st.integers(0, 9)),
    st.tuples(st.just("disqualify"), st.integers(0, 9)),
    st.tuples(st.just("advance"), st.integers(0, 9), st.integers(1, 7)),
    st.tuples(st.just("win"), st.integers(0, 9)),
    st.tuples(st.just("lose"), st.integers(0, 9)),
    st.tuples(st.just("reopen"), st.integers(0, 9), st.integers(1, 7)),
    st.tuples(st.just("amount"), st.integers(0, 9), st.integers(1, 9)),
    st.tuples(st.just("activity"), st.integers(0, 9)),
    st.tuples(st.just("owner"), st.integers(0, 9), st.sampled_from(PEOPLE[1:])),
    st.tuples(st.just("assign"), st.integers(0, 5), st.sampled_from(PEOPLE)),
    st.tuples(st.just("forecast"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("revise_forecast"), st.sampled_from(PEOPLE), st.integers(0, 9)),
    st.tuples(st.just("plan"), st.integers(1, 9)),
)


def qualify_if_pending(ledger: SalesLedger, deal: str) -> None:
    if ledger.load(Opportunity, deal).qualification == Qualification.PENDING:
        ledger.qualify_opportunity(deal, ALL_MET, actor="boss")


def run(ledger: SalesLedger, op: tuple[Any, ...], customers: list[str], deals: list[str]) -> None:
    kind = op[0]
    deal = (
        deals[op[1] % len(deals)]
        if deals
        and kind not in ("register", "open", "assign", "forecast", "revise_forecast", "plan")
        else None
    )
    if kind == "register":
        customers.append(
            ledger.register_customer(
                name=f"Customer {len(customers)}", source="web", owner_id=op[1], actor="boss"
            ).aggregate_id
        )
    elif kind == "open" and customers:
        deals.append(
            ledger.open_opportunity(
                customer_id=customers[op[1] % len(customers)],
                owner_id=op[2],
                title="deal",
                source=("web", "referral")[len(deals) % 2],
                amount=Decimal(1000 + len(deals)),
                expected_close=date(2026, 1 + len(deals) % 12, 15),
                product="arm",
                region=("east", "west")[len(deals) % 2],
                actor="boss",
            ).aggregate_id
        )
    elif kind == "assign" and customers:
        ledger.assign_customer(customers[op[1] % len(customers)], op[2], "territory", actor="boss")
    elif kind == "forecast":
        ledger.submit_forecast("2026", [], actor=op[1])
    elif kind == "revise_forecast":
        ledger.revise_forecast(op[1], "2026", Decimal(op[2] * 100), "adjusted", actor="boss")
    elif kind == "plan":
        ledger.draft_plan(
            name="FY", period="2026", targets={"revenue": Decimal(op[1] * 1000)}, actor="boss"
        )
    elif deal is None:
        return
    elif kind == "qualify":
        ledger.qualify_opportunity(deal, ALL_MET, actor="boss")
    elif kind == "disqualify":
        ledger.disqualify_opportunity(deal, NONE_MET, "no budget yet", actor="boss")
    elif kind == "advance":
        qualify_if_pending(ledger, deal)
        ledger.advance_stage(deal, op[2], "back", actor="boss")
    elif kind == "win":
        qualify_if_pending(ledger, deal)
        if ledger.load(Opportunity, deal).stage != LAST_OPEN_STAGE:
            ledger.advance_stage(deal, LAST_OPEN_STAGE, "back", actor="boss")
        ledger.win_opportunity(deal, Decimal(900), date(2026, 3, 1), actor="boss")
    elif kind == "lose":
        ledger.lose_opportunity(deal, "price", "ABB", date(2026, 3, 1), actor="boss")
    elif kind == "reopen":
        ledger.reopen_opportunity(deal, "back", op[2], actor="boss")
    elif kind == "amount":
        ledger.revise_amount(deal, Decimal(op[2] * 500), "rescoped", actor="boss")
    elif kind == "activity":
        ledger.log_opportunity_activity(deal, "call", "called", actor="rep")
    elif kind == "owner":
        ledger.change_primary_owner(deal, op[2], "handover", actor="boss")


def table_rows(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    dump = {}
    with database.transaction() as tx:
        for projection in all_projections():
            for table in projection.tables:
                rows = tx.execute(f"SELECT * FROM {table}")
                dump[table] = sorted(tuple(str(v) for v in row.values()) for row in rows)
    return dump


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    operations=st.lists(operation, min_size=1, max_size=60),
    batch_size=st.integers(1, 7),
    catch_up_every=st.integers(1, 10),
    processes=st.integers(1, 5),
)
def test_incremental_projections_equal_a_rebuild(
    operations: list[tuple[Any, ...]], batch_size: int, catch_up_every: int, processes: int
) -> None:
    """Also with the projections spread as over worker processes (a runner per group):
    a group whose projections all name their topics reads only those, and its positions
    still reach the last event."""
    with tempfile.TemporaryDirectory() as directory:
        config = Settings(store="sqlite", sqlite_path=str(Path(directory) / "ledger.db"))
        ledger = build_ledger(config)
        database = Database(config)
        ledger.set_up_organisation("Co", "admin", "Admin")
        ledger.add_person("boss", "Boss", "manager", None, actor="admin")
        ledger.add_person("rep", "Rep", "sales_rep", "boss", actor="admin")
        ledger.add_person("rep2", "Rep 2", "sales_rep", "boss", actor="admin")
        runners = [
            ProjectionRunner(
                ledger,
                database,
                [p for p in all_projections() if p.name in group],
                batch_size=batch_size,
            )
            for group in spread_over_processes(projection_names(), processes)
        ]
        customers: list[str] = []
        deals: list[str] = []
        preamble = [
            ("register", "rep"),
            ("register", None),
            *[("open", i, "rep") for i in range(4)],
        ]
        for step, op in enumerate([*preamble, *operations]):
            moment = START + timedelta(days=step, hours=step % 5)
            with recorded_at(moment), contextlib.suppress(DomainError):
                run(ledger, op, customers, deals)
            if step % catch_up_every == 0:
                for runner in runners:
                    runner.process_batch()
        for runner in runners:
            runner.catch_up()
        incremental = table_rows(database)
        last = ledger.recorder.max_notification_id()
        assert {p for runner in runners for p in runner.positions().values()} == {last}

        rebuilt_runner = ProjectionRunner(ledger, database, all_projections(), batch_size=1000)
        rebuilt_runner.rebuild()

        assert table_rows(database) == incremental
        with database.transaction() as tx:
            deal_rows = tx.execute("SELECT * FROM funnel_opportunities")
        for selection in FILTERS:
            assert query_funnel(database, selection) == funnel_from_deals(deal_rows, selection)
        for days in (0, len(operations) // 2, len(operations) + 6):
            moment = START + timedelta(days=days, hours=2)
            assert query_funnel_as_of(database, moment) == fold_funnel_as_of(ledger, moment)
        assert set(rebuilt_runner.positions().values()) == {last}
        database.close()
