"""The analytics through the API and the CLI: pipeline changes, scoped to the caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.opportunity import Opportunity
from commands.ledger import SalesLedger
from events.base import recorded_at
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.cli import main
from services.importing.crm import imported_id
from services.settings import Settings

ALL_MET = {criterion: True for criterion in QUALIFICATION_CRITERIA}
T0 = datetime(2026, 2, 2, 9, tzinfo=UTC)


@dataclass
class World:
    client: TestClient
    ledger: SalesLedger
    headers: dict[str, dict[str, str]]
    deals: dict[str, str]
    path: Path

    def get(self, person: str, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=self.headers[person])
        assert response.status_code == 200, response.text
        return response.json()


def _open(ledger: SalesLedger, customer: str, owner: str, title: str, amount: int) -> str:
    deal = ledger.open_opportunity(
        customer_id=customer,
        owner_id=owner,
        title=title,
        source="web",
        amount=Decimal(amount),
        expected_close=date(2026, 5, 15),
        product="erp",
        region="east",
        actor=owner,
    ).aggregate_id
    ledger.qualify_opportunity(deal, ALL_MET, actor=owner)
    ledger.advance_stage(deal, 3, actor=owner)
    return deal


def _history(ledger: SalesLedger) -> dict[str, str]:
    """Three deals at T0; in the week after: one pushed out of Q2 twice, one lost, one
    cut by a third; the week after that, more of the same."""
    with recorded_at(T0):
        customer = ledger.register_customer(name="Acme", source="web", actor="rep").aggregate_id
        deals = {
            "slipper": _open(ledger, customer, "rep", "slipper", 1000),
            "loser": _open(ledger, customer, "rep2", "loser", 2000),
            "shrinker": _open(ledger, customer, "rep", "shrinker", 3000),
        }
    with recorded_at(T0 + timedelta(days=2)):
        ledger.revise_close_date(deals["slipper"], date(2026, 6, 20), "later", actor="rep")
        ledger.revise_amount(deals["shrinker"], Decimal(2000), "fewer seats", actor="rep")
        ledger.lose_opportunity(deals["loser"], "price", "Globex", date(2026, 2, 4), actor="rep2")
    with recorded_at(T0 + timedelta(days=3)):
        ledger.revise_close_date(deals["slipper"], date(2026, 7, 20), "later", actor="rep")
    return deals


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    with recorded_at(T0 - timedelta(days=1)):
        ledger.set_up_organisation("Demo Co", "admin", "Admin")
        ledger.add_person("boss", "Boss", "manager", None, actor="admin")
        ledger.add_person("rep", "Rep", "sales_rep", "boss", actor="admin")
        ledger.add_person("rep2", "Rep Two", "sales_rep", "boss", actor="admin")
    deals = _history(ledger)
    headers = {
        p: {"Authorization": f"Bearer {ledger.issue_token(p, actor='admin')[1]}"}
        for p in ("admin", "boss", "rep", "rep2")
    }
    with TestClient(create_app(settings, ledger)) as client:
        yield World(client, ledger, headers, deals, tmp_path / "ledger.db")


WINDOW = {"from": (T0 + timedelta(hours=1)).isoformat(), "to": (T0 + timedelta(days=5)).isoformat()}


def test_pipeline_changes_show_each_step_with_its_deals(world: World) -> None:
    report = world.get("boss", "/pipeline/changes", close_period="2026-Q2", **WINDOW)

    steps = {s["step"]: s for s in report["steps"]}
    assert (report["start"]["count"], report["start"]["amount"]) == (3, "6000")
    assert [d["opportunity_id"] for d in steps["pushed_out"]["deals"]] == [world.deals["slipper"]]
    assert [d["opportunity_id"] for d in steps["lost"]["deals"]] == [world.deals["loser"]]
    assert steps["amount_decreased"]["amount"] == "-1000"
    assert steps["amount_decreased"]["weighted_amount"] == "-200.00"
    assert (report["end"]["count"], report["end"]["amount"]) == (1, "2000")
    assert report["reconciled"] is True
    assert [(m["opportunity_id"], m["times"]) for m in report["pushed"]] == [
        (world.deals["slipper"], 2)
    ]


def test_a_rep_sees_only_the_changes_of_their_own_deals(world: World) -> None:
    mine = world.get("rep", "/pipeline/changes", **WINDOW)
    everyone = world.get("admin", "/pipeline/changes", **WINDOW)
    asked_for_another = world.client.get(
        "/pipeline/changes", params={"owner": "rep2", **WINDOW}, headers=world.headers["rep"]
    )

    assert mine["start"]["count"] == 2
    assert everyone["start"]["count"] == 3
    assert asked_for_another.status_code == 403  # the same answer as for nobody at all
    owners = {d["owner_id"] for s in mine["steps"] for d in s["deals"]}
    assert owners == {"rep"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, "to"),
        ({"from": "yesterday", "to": "2026-02-01T00:00:00Z"}, "from"),
        ({"to": "2026-02-01T00:00:00Z"}, "from"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(
    world: World, params: dict[str, str], field: str
) -> None:
    response = world.client.get("/pipeline/changes", params=params, headers=world.headers["boss"])

    assert response.status_code == 422
    assert field in response.text


def test_the_cli_prints_the_waterfall(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_STORE", "sqlite")
    monkeypatch.setenv("LEDGER_SQLITE_PATH", str(world.path))

    code = main(
        [
            "changes",
            "--from",
            WINDOW["from"],
            "--to",
            WINDOW["to"],
            "--close-period",
            "2026-Q2",
            "--deals",
        ]
    )

    printed = capsys.readouterr().out
    assert code == 0
    assert "pushed out of the period" in printed and world.deals["slipper"] in printed
    assert "reconciled: yes" in printed


def test_field_history_of_a_deal_with_its_flags(world: World) -> None:
    slipper = world.deals["slipper"]

    report = world.get("rep", f"/aggregates/{slipper}/field-history", field="expected_close")

    moves = [(c["old"], c["new"], c["actor"], c["reason"]) for c in report["changes"]]
    assert moves == [
        (None, "2026-05-15", "rep", None),
        ("2026-05-15", "2026-06-20", "rep", "later"),
        ("2026-06-20", "2026-07-20", "rep", "later"),
    ]
    assert report["aggregate_type"] == "Opportunity"
    assert "pushed" in report["flags"]["flags"]
    refused = world.client.get(
        f"/aggregates/{slipper}/field-history", headers=world.headers["rep2"]
    )
    assert refused.status_code == 403


def test_pipeline_flags_in_the_callers_scope(world: World) -> None:
    flagged = world.get("boss", "/pipeline/flags", pushed_times=2, amount_drop_percent=30)
    by_deal = {f["opportunity_id"]: f["flags"] for f in flagged}

    assert "pushed" in by_deal[world.deals["slipper"]]
    assert "amount_down" in by_deal[world.deals["shrinker"]]
    assert world.deals["loser"] not in by_deal  # lost: closed deals only on request
    closed = world.get("rep2", "/pipeline/flags", include_closed=True)
    assert {f["owner_id"] for f in closed} <= {"rep2"}
    bad = world.client.get(
        "/pipeline/flags", params={"idle_days": 0}, headers=world.headers["boss"]
    )
    assert bad.status_code == 422 and "idle_days" in bad.text


def test_the_cli_prints_field_history_and_flags(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_STORE", "sqlite")
    monkeypatch.setenv("LEDGER_SQLITE_PATH", str(world.path))

    assert main(["field-history", world.deals["shrinker"], "--field", "amount"]) == 0
    history = capsys.readouterr().out
    assert main(["flags", "--team", "boss", "--amount-drop-percent", "30"]) == 0
    flags = capsys.readouterr().out

    assert "amount: 3000 → 2000  (fewer seats)" in history
    assert world.deals["shrinker"] in flags and "amount_down" in flags


def test_win_loss_by_reason_competitor_stage_and_dimension(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with recorded_at(T0 + timedelta(days=4)):
        world.ledger.advance_stage(world.deals["shrinker"], 7, actor="rep")
        world.ledger.win_opportunity(
            world.deals["shrinker"], Decimal(1800), date(2026, 2, 6), actor="rep"
        )

    report = world.get("boss", "/win-loss", close_period="2026-Q1")
    mine = world.get("rep", "/win-loss")

    assert (report["total"]["won"], report["total"]["lost"]) == (1, 1)
    assert report["total"]["win_rate"] == "0.5000"
    assert [(o["key"], o["lost"]) for o in report["lost_reasons"]] == [("price", 1)]
    assert [(o["key"], o["lost"]) for o in report["competitors"]] == [("Globex", 1)]
    assert [(o["key"], o["lost"]) for o in report["lost_at_stage"]] == [("3", 1)]
    by_owner = {o["key"]: (o["won"], o["lost"]) for o in report["by"]["owner_id"]}
    assert by_owner == {"rep": (1, 0), "rep2": (0, 1)}
    assert report["by"]["source"][0]["won_amount"] == "1800"
    assert (mine["total"]["won"], mine["total"]["lost"]) == (1, 0)
    assert world.get("boss", "/win-loss", close_period="2026-Q2")["total"]["won"] == 0
    monkeypatch.setenv("LEDGER_STORE", "sqlite")
    monkeypatch.setenv("LEDGER_SQLITE_PATH", str(world.path))
    assert main(["win-loss", "--team", "boss"]) == 0
    assert "Globex" in capsys.readouterr().out


def test_forecast_errors_split_per_deal_and_reconcile(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = world.ledger
    customer = ledger.read(Opportunity, world.deals["shrinker"]).customer_id
    with recorded_at(T0 + timedelta(days=5)):
        deals = {
            "slipper": _open(ledger, customer, "rep", "slips", 1000),
            "shrinker": _open(ledger, customer, "rep", "shrinks", 3000),
            "loser": _open(ledger, customer, "rep2", "is lost", 2000),
        }
        ledger.submit_forecast("2026-Q2", [deals["slipper"], deals["shrinker"]], actor="rep")
        ledger.submit_forecast("2026-Q2", [deals["loser"]], actor="rep2")
        ledger.submit_forecast("2026-Q2", [], actor="boss")
        ledger.revise_forecast("boss", "2026-Q2", Decimal(5000), "cautious", actor="boss")
    with recorded_at(T0 + timedelta(days=7)):
        ledger.revise_close_date(deals["slipper"], date(2026, 7, 20), "later", actor="rep")
        ledger.advance_stage(deals["shrinker"], 7, actor="rep")
        surprise = _open(ledger, customer, "rep", "surprise", 700)
        ledger.advance_stage(surprise, 7, actor="rep")
    # a deal closes on a day that has come (the closing-date rule): each is recorded then
    with recorded_at(datetime(2026, 4, 4, 12, tzinfo=UTC)):
        ledger.lose_opportunity(deals["loser"], "price", None, date(2026, 4, 4), actor="rep2")
    with recorded_at(datetime(2026, 5, 10, 12, tzinfo=UTC)):
        ledger.win_opportunity(deals["shrinker"], Decimal(1800), date(2026, 5, 10), actor="rep")
    with recorded_at(datetime(2026, 6, 1, 12, tzinfo=UTC)):
        ledger.win_opportunity(surprise, Decimal(700), date(2026, 6, 1), actor="rep")

    at = (T0 + timedelta(days=6)).isoformat()
    report = world.get("boss", "/forecasts/2026-Q2/errors", as_of=at)
    mine = world.get("rep", "/forecasts/2026-Q2/errors", as_of=at)

    people = {p["person_id"]: p for p in report["people"]}
    boss = people["boss"]
    assert (boss["forecast"], boss["actual"], boss["error"]) == ("5000", "2500", "-2500")
    assert boss["by_cause"] == {
        "amount_change": "-1200", "slip": "-1000", "stage_regression": "0", "loss": "-2000",
        "unforecast": "700", "adjustment": "1000",
    }  # fmt: skip
    assert sum(Decimal(v) for v in boss["by_cause"].values()) == Decimal(boss["error"])
    causes = {d["opportunity_id"]: d["cause"] for d in boss["deals"]}
    assert causes == {
        deals["slipper"]: "slip", deals["shrinker"]: "amount_change", deals["loser"]: "loss",
        surprise: "unforecast",
    }  # fmt: skip
    assert people["rep"]["accuracy"] == "0.4000"  # 1 − |2500 − 4000| ÷ 2500
    assert [p["person_id"] for p in mine["people"]] == ["rep"]
    accuracy = world.get("boss", "/forecast-accuracy", period=["2026-Q2"], days_before_end=140)
    assert {a["person_id"]: a["periods"]["2026-Q2"] for a in accuracy}["rep"] == "0.4000"
    assert {a["person_id"]: a["mean_absolute_error"] for a in accuracy}["rep"] == "1500"
    monkeypatch.setenv("LEDGER_STORE", "sqlite")
    monkeypatch.setenv("LEDGER_SQLITE_PATH", str(world.path))
    assert main(["forecast-errors", "2026-Q2", "--as-of", at]) == 0
    assert "mean |error|" in capsys.readouterr().out


def test_an_admin_imports_a_csv_file_over_http(world: World) -> None:
    header = "Id,Name,Source,TaxId,Phone,Email,OwnerId,CreatedDate"
    good = f"{header}\nc-9,Globex Ltd,web,,,,rep,2026-01-05T10:00:00Z\n"
    bad = f"{header}\nc-10,Initech,web,,,,nobody,2026-01-05\nc-11,Acme,web,,,,rep,2026-01-05\n"

    def post(body: str, person: str = "admin", **params: Any) -> Any:
        return world.client.post(
            "/imports/customers",
            content=body.encode(),
            params=params,
            headers={**world.headers[person], "Content-Type": "text/csv"},
        )

    dry = post(good, dry_run=True)
    written = post(good, file_name="accounts.csv")
    again = post(good, file_name="accounts.csv")
    refused = post(bad)

    assert dry.status_code == 200 and dry.json()["written"] is False
    assert written.status_code == 200 and written.json()["imported"] == 1
    assert again.json()["already_imported"] == 1 and again.json()["imported"] == 0
    assert refused.status_code == 422
    problems = [(p["line"], p["field"]) for p in refused.json()["problems"]]
    assert problems == [(2, "OwnerId"), (3, "Name")]  # Acme is known already
    assert post(good, person="boss").status_code == 403
    customer = world.get("admin", f"/aggregates/{imported_id('customer', 'c-9')}")
    assert customer["state"]["name"] == "Globex Ltd"
