"""Each projection, fed hand-written event sequences, on an SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from aggregates.funnel import health_label
from events.customer import ActivityLogged, CustomerAssigned, CustomerRegistered
from events.forecast import ForecastOpened, ForecastRevised, ForecastSubmitted
from events.opportunity import (
    OpportunityActivityLogged,
    OpportunityDisqualified,
    OpportunityLost,
    OpportunityOpened,
    OpportunityQualified,
    OpportunityWon,
    PrimaryOwnerChanged,
    StageAdvanced,
)
from projections.base import Projection, RecordedEvent
from projections.forecasts import ForecastProjection, query_forecast_report
from projections.funnel import (
    FunnelFilter,
    FunnelProjection,
    funnel_from_deals,
    query_funnel,
    query_funnel_health,
)
from projections.monitoring import (
    MonitoringProjection,
    query_activity_counts,
    query_ownership_transfers,
    query_slipped_deals,
    query_stale_deals,
    query_unowned_customers,
)
from services.database import Database
from services.settings import Settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(Settings(store="sqlite", sqlite_path=str(tmp_path / "read.db")))
    yield db
    db.close()


class Stream:
    """Hand-written events for one aggregate, numbered and stamped in order."""

    position = 0

    def __init__(self, topic: str, aggregate_id: UUID | None = None) -> None:
        self.id = aggregate_id or uuid4()
        self.topic = topic
        self.version = 0

    def __call__(
        self, cls: type[Any], at: datetime, actor: str = "rep", **fields: Any
    ) -> RecordedEvent:
        self.version += 1
        Stream.position += 1
        extra = {"originator_topic": self.topic} if self.version == 1 else {}
        event = cls(
            originator_id=self.id,
            originator_version=self.version,
            timestamp=at,
            actor=actor,
            **extra,
            **fields,
        )
        return RecordedEvent.of(Stream.position, event)


def apply(database: Database, projection: Projection, events: list[RecordedEvent]) -> None:
    with database.transaction() as tx:
        projection.create_tables(tx)
        projection.process(tx, events)


def opened(
    deal: Stream,
    at: datetime,
    owner: str = "rep",
    amount: int = 1000,
    close: date = date(2026, 6, 30),
    region: str = "east",
) -> RecordedEvent:
    return deal(
        OpportunityOpened,
        at,
        customer_id="c1",
        owner_id=owner,
        title="deal",
        source="web",
        amount=Decimal(amount),
        expected_close=close,
        product="arm",
        region=region,
    )


def test_funnel_counts_stages_and_weights_amounts(database: Database) -> None:
    a, b = Stream("o"), Stream("o")
    apply(
        database,
        FunnelProjection(),
        [
            opened(a, T0),
            opened(b, T0, owner="rep2", amount=500, region="west"),
            a(OpportunityQualified, T0 + timedelta(days=1), criteria={}),
            a(StageAdvanced, T0 + timedelta(days=2), from_stage=1, to_stage=3, reason=None),
        ],
    )

    funnel = query_funnel(database)
    west = query_funnel(database, FunnelFilter(region="west"))

    assert [s.count for s in funnel.stages] == [1, 0, 1, 0, 0, 0, 0, 0]
    assert funnel.stages[2].weighted_amount == Decimal("200.00")
    assert funnel.weighted_amount == Decimal("225.00")
    assert west.open_count == 1 and west.open_amount == Decimal(500)


def test_a_won_deal_leaves_the_open_stages_and_counts_as_stage_8(database: Database) -> None:
    deal = Stream("o")
    events = [
        opened(deal, T0),
        deal(StageAdvanced, T0 + timedelta(days=1), from_stage=1, to_stage=7, reason=None),
        deal(
            OpportunityWon, T0 + timedelta(days=3), amount=Decimal(900), closed_on=date(2026, 3, 5)
        ),
    ]
    apply(database, FunnelProjection(), events)

    funnel = query_funnel(database)
    in_q1 = query_funnel(
        database, FunnelFilter(close_from=date(2026, 1, 1), close_to=date(2026, 3, 31))
    )

    assert funnel.open_count == 0 and funnel.stages[7].amount == Decimal(900)
    assert in_q1.stages[7].count == 1
    with database.transaction() as tx:
        stays = tx.execute(
            "SELECT stage, seconds, outcome FROM funnel_stage_intervals ORDER BY left_position"
        )
    assert [(r["stage"], r["outcome"]) for r in stays] == [(1, "stage 7"), (7, "won")]
    assert stays[1]["seconds"] == 2 * 86400


def test_the_owner_totals_agree_with_the_deals(database: Database) -> None:
    deal = Stream("o")
    apply(
        database,
        FunnelProjection(),
        [
            opened(deal, T0),
            deal(
                PrimaryOwnerChanged,
                T0 + timedelta(days=1),
                owner_id="rep2",
                previous_owner_id="rep",
                reason="handover",
            ),
        ],
    )
    with database.transaction() as tx:
        rows = tx.execute("SELECT * FROM funnel_opportunities")
    for owners in (None, {"rep"}, {"rep2"}):
        selection = FunnelFilter(owner_ids=owners)
        assert query_funnel(database, selection) == funnel_from_deals(rows, selection)


def test_a_deal_sent_back_for_nurturing_leaves_the_funnel_until_requalified(
    database: Database,
) -> None:
    kept, nurtured = Stream("o"), Stream("o")
    day = timedelta(days=1)
    sent_back = [
        opened(kept, T0),
        opened(nurtured, T0, amount=400),
        nurtured(OpportunityQualified, T0 + day, criteria={}),
        nurtured(StageAdvanced, T0 + 2 * day, from_stage=1, to_stage=2, reason=None),
        nurtured(OpportunityDisqualified, T0 + 3 * day, criteria={}, reason="no budget"),
    ]
    apply(database, FunnelProjection(), sent_back)

    funnel = query_funnel(database)
    health = query_funnel_health(database, now=T0 + 40 * day, history_months=1)

    assert [s.count for s in funnel.stages] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert (funnel.open_count, funnel.open_amount) == (1, Decimal(1000))
    assert (funnel.nurturing_count, funnel.nurturing_amount) == (1, Decimal(400))
    assert health.stages[0].count == 1 and health.stages[0].expected_count == 1

    apply(
        database,
        FunnelProjection(),
        [nurtured(OpportunityQualified, T0 + 5 * day, criteria={})],
    )
    funnel = query_funnel(database)
    with database.transaction() as tx:
        stays = tx.execute(
            "SELECT stage, outcome, nurturing, seconds FROM funnel_stage_intervals "
            "ORDER BY left_position"
        )

    assert funnel.stages[0].count == 2 and funnel.nurturing_count == 0
    assert [(r["stage"], r["outcome"], r["nurturing"]) for r in stays] == [
        (1, "stage 2", 0),
        (2, "nurturing", 0),
        (1, "qualified", 1),
    ]
    assert stays[2]["seconds"] == 2 * 86400


def test_a_lost_nurtured_deal_is_neither_open_nor_nurturing(database: Database) -> None:
    deal = Stream("o")
    apply(
        database,
        FunnelProjection(),
        [
            opened(deal, T0),
            deal(OpportunityDisqualified, T0 + timedelta(days=1), criteria={}, reason="later"),
            deal(
                OpportunityLost,
                T0 + timedelta(days=2),
                reason="gone",
                competitor=None,
                closed_on=date(2026, 3, 4),
            ),
        ],
    )
    funnel = query_funnel(database)
    assert (funnel.open_count, funnel.nurturing_count) == (0, 0)


FILTERS = [
    FunnelFilter(),
    FunnelFilter(owner_ids={"rep"}),
    FunnelFilter(region="west"),
    FunnelFilter(product="arm", source="web"),
    FunnelFilter(close_from=date(2026, 4, 1), close_to=date(2026, 6, 30)),
    FunnelFilter(close_from=date(2026, 3, 1), close_to=date(2026, 3, 31)),
    FunnelFilter(region="east", close_from=date(2026, 6, 29), close_to=date(2026, 7, 5)),
    FunnelFilter(close_from=date(2026, 3, 5), close_to=date(2026, 3, 5)),
    FunnelFilter(owner_ids={"rep", "rep2"}, region="east"),
    FunnelFilter(owner_ids={"rep2"}, close_from=date(2026, 1, 1), close_to=date(2026, 12, 31)),
]


def test_every_filter_gives_what_a_scan_of_the_deals_gives(database: Database) -> None:
    a, b, c, d = Stream("o"), Stream("o"), Stream("o"), Stream("o")
    day = timedelta(days=1)
    apply(
        database,
        FunnelProjection(),
        [
            opened(a, T0),
            opened(b, T0, owner="rep2", amount=500, region="west", close=date(2026, 7, 2)),
            opened(c, T0, owner="rep2", amount=700),
            opened(d, T0, amount=300, close=date(2026, 3, 31)),
            a(OpportunityQualified, T0 + day, criteria={}),
            a(StageAdvanced, T0 + 2 * day, from_stage=1, to_stage=7, reason=None),
            a(OpportunityWon, T0 + 3 * day, amount=Decimal(900), closed_on=date(2026, 3, 5)),
            c(OpportunityDisqualified, T0 + day, criteria={}, reason="no budget"),
            d(OpportunityQualified, T0 + day, criteria={}),
            d(StageAdvanced, T0 + 2 * day, from_stage=1, to_stage=4, reason=None),
        ],
    )
    with database.transaction() as tx:
        rows = tx.execute("SELECT * FROM funnel_opportunities")
    for selection in FILTERS:
        assert query_funnel(database, selection) == funnel_from_deals(rows, selection), selection


@pytest.mark.parametrize(
    ("ratio", "label"),
    [
        (Decimal("1.01"), "excellent"),
        (Decimal("1.00"), "good"),
        (Decimal("0.70"), "good"),
        (Decimal("0.69"), "warning"),
        (None, "no history"),
    ],
)
def test_funnel_health_labels_follow_the_thresholds(ratio: Decimal | None, label: str) -> None:
    assert health_label(ratio) == label


def test_monitoring_finds_stale_and_slipped_deals_and_counts_activity(database: Database) -> None:
    idle, busy = Stream("o"), Stream("o")
    customer = Stream("c")
    apply(
        database,
        MonitoringProjection(),
        [
            opened(idle, T0, close=date(2026, 3, 10)),
            opened(busy, T0),
            busy(OpportunityActivityLogged, T0 + timedelta(days=40), kind="call", summary="x"),
            customer(
                CustomerRegistered,
                T0,
                name="Acme",
                source="web",
                tax_id=None,
                phone=None,
                email=None,
                owner_id=None,
                profile={},
            ),
            customer(
                ActivityLogged,
                T0 + timedelta(days=41),
                kind="visit",
                summary="y",
                opportunity_id=str(idle.id),
            ),
        ],
    )
    now = T0 + timedelta(days=45)

    stale = query_stale_deals(database, days=30, now=now - timedelta(days=5))
    slipped = query_slipped_deals(database, today=date(2026, 4, 1))
    activity = query_activity_counts(database, person_ids={"rep"})

    assert [d.opportunity_id for d in stale.items] == []
    assert [d.opportunity_id for d in slipped.items] == [str(idle.id)]
    assert sum(a.total for a in activity) == 2
    assert query_unowned_customers(database).total == 1


def test_monitoring_records_every_ownership_transfer(database: Database) -> None:
    customer, deal = Stream("c"), Stream("o")
    apply(
        database,
        MonitoringProjection(),
        [
            customer(
                CustomerRegistered,
                T0,
                name="Acme",
                source="web",
                tax_id=None,
                phone=None,
                email=None,
                owner_id=None,
                profile={},
            ),
            customer(
                CustomerAssigned,
                T0,
                actor="boss",
                owner_id="rep",
                previous_owner_id=None,
                reason="new",
            ),
            opened(deal, T0),
            deal(
                PrimaryOwnerChanged,
                T0,
                actor="boss",
                owner_id="rep2",
                previous_owner_id="rep",
                reason="handover",
            ),
        ],
    )

    transfers = query_ownership_transfers(database, person_id="rep").items

    assert [(t.aggregate_type, t.from_owner, t.to_owner) for t in transfers] == [
        ("customer", None, "rep"),
        ("opportunity", "rep", "rep2"),
    ]
    assert query_unowned_customers(database).total == 0


def test_forecasts_roll_up_and_what_was_believed_then(database: Database) -> None:
    rep, boss = Stream("f"), Stream("f")
    events = [
        rep(ForecastOpened, T0, person_id="rep", period="2026-Q2"),
        rep(
            ForecastSubmitted,
            T0,
            lines=[{"opportunity_id": "o1", "amount": "100", "category": "commit"}],
            team={},
            own_total=Decimal(100),
            team_total=Decimal(0),
            total=Decimal(100),
        ),
        boss(ForecastOpened, T0, actor="boss", person_id="boss", period="2026-Q2"),
        boss(
            ForecastSubmitted,
            T0 + timedelta(days=1),
            actor="boss",
            lines=[{"opportunity_id": "o2", "amount": "50"}],
            team={"rep": Decimal(100)},
            own_total=Decimal(50),
            team_total=Decimal(100),
            total=Decimal(150),
        ),
        boss(
            ForecastRevised,
            T0 + timedelta(days=2),
            actor="boss",
            adjusted_total=Decimal(120),
            previous_total=Decimal(150),
            reason="cautious",
        ),
    ]
    apply(database, FunnelProjection(), [])
    apply(database, ForecastProjection(), events)
    managers = {"boss": None, "rep": "boss"}

    now = {p.person_id: p for p in query_forecast_report(database, "2026-Q2", managers).people}
    then = {
        p.person_id: p
        for p in query_forecast_report(
            database, "2026-Q2", managers, as_of=T0 + timedelta(days=1, hours=1)
        ).people
    }

    assert (now["boss"].rollup_unadjusted, now["boss"].rollup_adjusted) == (
        Decimal(150),
        Decimal(120),
    )
    assert now["boss"].revisions[0].reason == "cautious"
    assert (then["boss"].rollup_adjusted, then["boss"].adjusted_total) == (Decimal(150), None)
    assert now["rep"].accuracy == Decimal(0)  # 100 forecast, nothing sold
