"""A realistic demo data set: an organisation, customers, and deals moving through the
funnel over simulated months, with plans and forecasts — all through the real commands."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from eventsourcing.utils import get_topic
from tqdm import tqdm

from aggregates.errors import DomainError
from aggregates.evaluation import EVALUATION_QUESTIONS, QUALIFICATION_CRITERIA
from aggregates.organisation import Role
from aggregates.plan import period_bounds
from commands.ledger import SalesLedger
from events.base import recorded_at
from events.opportunity import OpportunityWon

REGIONS = ("north", "south", "east", "west")
PRODUCTS = ("erp", "crm", "analytics", "hosting")
NAME_FIRST = (
    "Bright", "Northwind", "Harbour", "Summit", "Evergreen", "Golden", "Silverline", "Redwood",
    "Bluewater", "Ironbridge", "Lakeside", "Crescent", "Pioneer", "Oakfield", "Starling",
    "Granite", "Meridian", "Riverbend", "Highland", "Coastal",
)
NAME_SECOND = (
    "Machinery", "Foods", "Logistics", "Textiles", "Pharma", "Retail", "Electronics", "Motors",
    "Chemicals", "Furniture", "Optics", "Packaging", "Ceramics", "Robotics", "Paper", "Steel",
    "Plastics", "Instruments", "Energy", "Garments",
)


def customer_name(n: int) -> str:
    """The demo's n-th company name: distinct for the first 400 (and numbered after)."""
    first = NAME_FIRST[n % len(NAME_FIRST)]
    second = NAME_SECOND[(n // len(NAME_FIRST)) % len(NAME_SECOND)]
    cycle = n // (len(NAME_FIRST) * len(NAME_SECOND))
    return f"{first} {second} Co." + (f" {cycle + 1}" if cycle else "")
SOURCES = ("campaign", "referral", "web", "channel_partner", "trade_show", "purchased_list")
SOURCE_QUALITY = {
    "referral": 0.75,
    "channel_partner": 0.6,
    "campaign": 0.5,
    "web": 0.45,
    "trade_show": 0.4,
    "purchased_list": 0.25,
}
COMPETITORS = ("Globex", "Initech", "Umbrella", None)
LOSS_REASONS = ("price", "no budget", "competitor relationship", "project cancelled")


@dataclass
class DemoSummary:
    people: int = 0
    customers: int = 0
    opportunities: int = 0
    won: int = 0
    lost: int = 0
    open: int = 0
    events: int = 0
    won_amount: Decimal = Decimal(0)
    plans: int = 0
    forecasts: int = 0
    rejected_commands: int = 0
    by_stage: dict[int, int] = field(default_factory=dict)


@dataclass
class _Deal:
    opportunity_id: str
    owner: str
    stage: int
    amount: Decimal
    expected_close: date
    quality: float
    qualified: bool = False


class DemoBuilder:
    """Drives the ledger through simulated months of sales work."""

    def __init__(
        self,
        ledger: SalesLedger,
        *,
        customers: int = 400,
        opportunities: int = 3000,
        start: date = date(2026, 1, 5),
        days: int = 300,
        seed: int = 7,
        progress: bool = True,
    ) -> None:
        self.ledger = ledger
        self.customer_count = customers
        self.opportunity_count = opportunities
        self.start = start
        self.days = days
        self.random = random.Random(seed)
        self.progress = progress
        self.summary = DemoSummary()
        self.managers: dict[str, list[str]] = {}
        self.reps: list[str] = []
        self.customers: list[tuple[str, str]] = []
        self.deals_opened = 0
        self.open_deals: dict[str, _Deal] = {}
        self._clock = datetime.combine(start, datetime.min.time(), tzinfo=UTC)

    def _at(self, day: date) -> datetime:
        moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
        self._clock = max(self._clock + timedelta(seconds=7), moment)
        return self._clock

    def _do(self, day: date, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a command as of ``day``; a refusal by the rules is counted, not raised."""
        with recorded_at(self._at(day)):
            try:
                return command(*args, **kwargs)
            except DomainError:
                self.summary.rejected_commands += 1
                return None

    def build(self) -> DemoSummary:
        ledger, rnd = self.ledger, self.random
        first = self.start - timedelta(days=5)
        with recorded_at(self._at(first)):
            ledger.set_up_organisation("Demo Sales Co", "admin", "Ada Admin")
        self._build_organisation(first)
        self._build_customers(first + timedelta(days=1))
        self._build_plan(first + timedelta(days=2))
        per_day = self.opportunity_count / self.days
        days = range(self.days)
        bar = tqdm(days, desc="simulating sales days", disable=not self.progress, unit="day")
        opened = 0
        for offset in bar:
            day = self.start + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            target_open = min(self.opportunity_count, round(per_day * (offset + 1)))
            while opened < target_open:
                self._open_deal(day)
                opened += 1
            for deal in list(self.open_deals.values()):
                if rnd.random() < 0.12:
                    self._work_deal(day, deal)
            if day.day in (25, 26) and day.month % 3 == 0 and day.weekday() < 5:
                self._submit_forecasts(day)
        self._finish()
        return self.summary

    def _build_organisation(self, day: date) -> None:
        ledger = self.ledger
        self._do(
            day,
            lambda: ledger.add_person("vp-sales", "Victor Peng", Role.MANAGER, None, actor="admin"),
        )
        self._do(
            day,
            lambda: ledger.add_person("auditor", "Audrey Tan", Role.AUDITOR, None, actor="admin"),
        )
        for region in REGIONS:
            manager = f"mgr-{region}"
            self._do(
                day,
                ledger.add_person,
                manager,
                f"{region.title()} Manager",
                Role.MANAGER,
                "vp-sales",
                actor="admin",
            )
            self.managers[manager] = []
            for k in range(1, 7):
                rep = f"rep-{region}-{k}"
                self._do(
                    day,
                    ledger.add_person,
                    rep,
                    rep.replace("-", " ").title(),
                    Role.SALES_REP,
                    manager,
                    actor="admin",
                )
                self.managers[manager].append(rep)
                self.reps.append(rep)
        self.summary.people = 3 + len(self.managers) + len(self.reps)

    def _build_customers(self, day: date) -> None:
        rnd, ledger = self.random, self.ledger
        bar = tqdm(
            range(self.customer_count), desc="registering customers", disable=not self.progress
        )
        for n in bar:
            rep = rnd.choice(self.reps)
            region = rep.split("-")[1]
            result = self._do(
                day,
                ledger.register_customer,
                name=customer_name(n),
                source=rnd.choice(SOURCES),
                tax_id=f"TX{n:06d}",
                phone=f"+1 555 {n:04d}",
                email=f"buyer{n}@customer{n}.example",
                owner_id=rep,
                profile={
                    "region": region,
                    "industry": rnd.choice(["retail", "manufacturing", "finance", "health"]),
                },
                actor=rep,
            )
            if result is not None:
                self.customers.append((result.aggregate_id, rep))
                if rnd.random() < 0.6:
                    self._do(
                        day,
                        ledger.classify_customer,
                        result.aggregate_id,
                        rnd.choice("ABC"),
                        "initial assessment",
                        actor=rep,
                    )
        duplicate = self._do(
            day,
            lambda: ledger.register_customer(
                name=customer_name(1).upper().replace("CO.", "COMPANY LIMITED"),
                source="web",
                actor=self.reps[0],
            ),
        )
        assert duplicate is None, "a duplicate registration must be refused"
        self.summary.customers = len(self.customers)

    def _build_plan(self, day: date) -> None:
        ledger = self.ledger
        total = Decimal(self.opportunity_count) * Decimal(18_000)
        plan = self._do(
            day,
            lambda: ledger.draft_plan(
                name="FY2026 revenue plan",
                period="2026",
                targets={"revenue": total},
                actor="vp-sales",
            ),
        )
        if plan is None:
            return
        quarter = total / 4
        self._do(
            day,
            lambda: ledger.decompose_plan(
                plan.aggregate_id,
                "total",
                "period",
                {f"2026-Q{q}": {"revenue": quarter} for q in range(1, 5)},
                actor="vp-sales",
            ),
        )
        region = total / len(REGIONS)
        self._do(
            day,
            lambda: ledger.decompose_plan(
                plan.aggregate_id,
                "total",
                "region",
                {r: {"revenue": region} for r in REGIONS},
                actor="vp-sales",
            ),
        )
        for r in REGIONS:
            reps = self.managers[f"mgr-{r}"]
            share = region / len(reps)
            self._do(
                day,
                ledger.decompose_plan,
                plan.aggregate_id,
                f"total/region={r}",
                "employee",
                {rep: {"revenue": share} for rep in reps},
                actor=f"mgr-{r}",
            )
        months = {f"2026-{m:02d}": {"revenue": quarter / 3} for m in (1, 2, 3)}
        self._do(
            day,
            lambda: ledger.decompose_plan(
                plan.aggregate_id, "total/period=2026-Q1", "period", months, actor="vp-sales"
            ),
        )
        self._revise_plan(day, plan.aggregate_id, region / len(self.managers["mgr-north"]))
        self._do(
            day,
            lambda: ledger.approve_plan(
                plan.aggregate_id, "approved at the kick-off", actor="admin"
            ),
        )
        self.summary.plans = 1

    def _revise_plan(self, day: date, plan_id: str, share: Decimal) -> None:
        """The cycle the brief describes: bottom-up proposals by the reps, the manager's
        bottom-up revision adopting them, then management's top-down correction."""
        ledger = self.ledger
        north = "total/region=north"
        modest, keen = f"{north}/employee=rep-north-2", f"{north}/employee=rep-north-5"
        self._do(
            day,
            lambda: ledger.propose_plan_targets(
                plan_id, modest, {"revenue": share - 150_000}, "two key accounts churned",
                actor="rep-north-2",
            ),
        )  # fmt: skip
        self._do(
            day,
            lambda: ledger.propose_plan_targets(
                plan_id, keen, {"revenue": share + 150_000}, "new territory in the port area",
                actor="rep-north-5",
            ),
        )  # fmt: skip
        self._do(
            day,
            lambda: ledger.revise_plan(
                plan_id,
                {modest: {"revenue": share - 150_000}, keen: {"revenue": share + 150_000}},
                "bottom_up",
                "the reps' proposals, adopted: the region's total stands",
                actor="mgr-north",
            ),
        )
        moved = Decimal(120_000)
        changes = {
            f"total/region={r}": {"revenue": share * len(reps) + sign * moved}
            for r, sign in (("north", 1), ("south", -1))
            for reps in [self.managers[f"mgr-{r}"]]
        }
        for r, sign in (("north", 1), ("south", -1)):
            reps = self.managers[f"mgr-{r}"]
            for rep in reps:
                path = f"total/region={r}/employee={rep}"
                base = share + (
                    {"rep-north-2": -150_000, "rep-north-5": 150_000}.get(rep, 0)
                )
                changes[path] = {"revenue": base + sign * moved / len(reps)}
        self._do(
            day,
            lambda: ledger.revise_plan(
                plan_id, changes, "top_down", "north has the new channel partner",
                actor="vp-sales",
            ),
        )  # fmt: skip

    def _open_deal(self, day: date) -> None:
        rnd, ledger = self.random, self.ledger
        customer_id, owner = rnd.choice(self.customers)
        source = rnd.choice(SOURCES)
        product = rnd.choice(PRODUCTS)
        self.deals_opened += 1
        # A title names no customer: it is not a personal field, so it would outlive an
        # erasure of the customer's name (docs/erasure.md).
        title = f"{product.upper()} project {self.deals_opened:04d}"
        amount = Decimal(rnd.randrange(5, 120) * 1000)
        expected_close = day + timedelta(days=rnd.randrange(30, 180))
        result = self._do(
            day,
            lambda: ledger.open_opportunity(
                customer_id=customer_id,
                owner_id=owner,
                title=title,
                source=source,
                amount=amount,
                expected_close=expected_close,
                product=product,
                region=owner.split("-")[1],
                actor=owner,
            ),
        )
        if result is not None:
            self.open_deals[result.aggregate_id] = _Deal(
                result.aggregate_id, owner, 1, amount, expected_close, SOURCE_QUALITY[source]
            )
            self.summary.opportunities += 1

    def _work_deal(self, day: date, deal: _Deal) -> None:
        rnd, ledger = self.random, self.ledger
        oid, owner = deal.opportunity_id, deal.owner
        self._do(
            day,
            lambda: ledger.log_opportunity_activity(
                oid,
                rnd.choice(["visit", "call", "meeting", "demo"]),
                "worked the deal",
                actor=owner,
            ),
        )
        if not deal.qualified:
            criteria = {c: rnd.random() < deal.quality + 0.35 for c in QUALIFICATION_CRITERIA}
            if all(criteria.values()):
                if self._do(day, lambda: ledger.qualify_opportunity(oid, criteria, actor=owner)):
                    deal.qualified = True
                    answers = {q: rnd.random() < deal.quality for q in EVALUATION_QUESTIONS}
                    self._do(day, lambda: ledger.evaluate_opportunity(oid, answers, actor=owner))
            elif rnd.random() < 0.5:
                self._do(
                    day,
                    lambda: ledger.disqualify_opportunity(
                        oid, criteria, "back to marketing for nurturing", actor=owner
                    ),
                )
                self.open_deals.pop(oid)
            return
        roll = rnd.random()
        if roll < 0.06 * (1.2 - deal.quality):
            self._do(
                day,
                lambda: ledger.lose_opportunity(
                    oid, rnd.choice(LOSS_REASONS), rnd.choice(COMPETITORS), day, actor=owner
                ),
            )
            self.open_deals.pop(oid)
        elif deal.stage == 7 and roll < 0.5:
            amount = (deal.amount * Decimal(rnd.choice(["0.9", "0.95", "1"]))).quantize(Decimal(1))
            if self._do(day, lambda: ledger.win_opportunity(oid, amount, day, actor=owner)):
                self.open_deals.pop(oid)
        elif roll < 0.75:
            deal.stage += 1 if deal.stage < 7 else 0
            if deal.stage <= 7:
                self._do(day, ledger.advance_stage, oid, deal.stage, actor=owner)
        elif roll < 0.8 and deal.stage > 2:
            deal.stage -= 1
            self._do(
                day,
                ledger.advance_stage,
                oid,
                deal.stage,
                "customer reopened requirements",
                actor=owner,
            )
        elif roll < 0.85:
            new_close = deal.expected_close + timedelta(days=30)
            if self._do(
                day,
                lambda: ledger.revise_close_date(
                    oid, new_close, "customer moved the decision", actor=owner
                ),
            ):
                deal.expected_close = new_close

    def _submit_forecasts(self, day: date) -> None:
        period = f"{day.year}-Q{(day.month - 1) // 3 + 1}"
        ledger = self.ledger

        start, end = period_bounds(period)
        for manager, reps in self.managers.items():
            for rep in reps:
                deals = [
                    d.opportunity_id
                    for d in self.open_deals.values()
                    if d.owner == rep and start <= d.expected_close <= end and d.stage >= 5
                ]
                if self._do(
                    day,
                    ledger.submit_forecast,
                    period,
                    deals,
                    actor=rep,
                ):
                    self.summary.forecasts += 1
            if self._do(day, ledger.submit_forecast, period, [], actor=manager):
                self.summary.forecasts += 1
                forecast = ledger.forecast(manager, period)
                adjusted = (forecast.figure(ledger.organisation()) * Decimal("0.9")).quantize(
                    Decimal(1)
                )
                self._do(
                    day,
                    ledger.revise_forecast,
                    manager,
                    period,
                    adjusted,
                    "discount for slippage",
                    actor="vp-sales",
                )
        if self._do(day, lambda: ledger.submit_forecast(period, [], actor="vp-sales")):
            self.summary.forecasts += 1

    def _finish(self) -> None:
        notifications = self.ledger.recorder.max_notification_id() or 0
        self.summary.events = notifications
        self.summary.open = len(self.open_deals)
        for deal in self.open_deals.values():
            self.summary.by_stage[deal.stage] = self.summary.by_stage.get(deal.stage, 0) + 1
        won = 0
        amount = Decimal(0)
        for notification in self.ledger.recorder.select_notifications(
            1, 10_000_000, topics=[get_topic(OpportunityWon)]
        ):
            event = cast(OpportunityWon, self.ledger.mapper.to_domain_event(notification))
            won += 1
            amount += event.amount
        self.summary.won = won
        self.summary.won_amount = amount
        self.summary.lost = self.summary.opportunities - self.summary.open - won
