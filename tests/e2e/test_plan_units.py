"""A unit's plan through the API, on SQLite and PostgreSQL: its actuals are its own
people's won deals, only its managers change it, and its reps propose their own part."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from tests.e2e.test_api_reports import won_deal


@pytest.fixture
def client(store_settings: Settings) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    ledger = build_ledger(store_settings)
    ledger.set_up_organisation("Two Regions Co", "admin", "Admin")
    ledger.add_person("vp", "Vic", "manager", None, actor="admin")
    for region in ("north", "south"):
        ledger.add_person(f"mgr-{region}", region.title(), "manager", "vp", actor="admin")
        ledger.add_person(f"rep-{region}", f"Rep {region}", "sales_rep", f"mgr-{region}",
                          actor="admin")  # fmt: skip
    people = ("admin", "vp", "mgr-north", "mgr-south", "rep-north", "rep-south")
    headers = {
        p: {"Authorization": f"Bearer {ledger.issue_token(p, actor='admin')[1]}"} for p in people
    }
    with TestClient(create_app(store_settings, ledger, project_in_process=True)) as test_client:
        yield test_client, headers
    ledger.close()


def post(client: TestClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers=headers)


def test_a_units_plan_counts_its_own_people_and_takes_their_proposals(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    test_client, headers = client
    won_deal(test_client, headers["rep-north"], "rep-north", "1000")
    won_deal(test_client, headers["rep-south"], "rep-south", "5000")
    north_plan = {"name": "North 2026", "period": "2026", "targets": {"revenue": "3000"}}
    drafted = post(test_client, headers["mgr-north"], "/plans", north_plan)
    assert drafted.status_code == 201, drafted.text
    plan = drafted.json()["aggregate_id"]
    decompositions = f"/plans/{plan}/decompositions"

    def to(rep: str) -> dict[str, Any]:
        allocations = {rep: north_plan["targets"]}
        return {"parent": "total", "dimension": "employee", "allocations": allocations}

    to_the_south = post(test_client, headers["mgr-north"], decompositions, to("rep-south"))
    by_another_unit = post(test_client, headers["mgr-south"], decompositions, to("rep-north"))
    decomposed = post(test_client, headers["mgr-north"], decompositions, to("rep-north"))
    node = "total/employee=rep-north"
    proposal = {"path": node, "targets": {"revenue": "2500"}, "reason": "a key account churned"}
    not_mine = post(test_client, headers["rep-south"], f"/plans/{plan}/proposals", proposal)
    proposed = post(test_client, headers["rep-north"], f"/plans/{plan}/proposals", proposal)

    assert to_the_south.status_code == 422 and "outside" in to_the_south.json()["detail"]
    assert by_another_unit.status_code == 403
    assert decomposed.status_code == 201 and not_mine.status_code == 403
    assert proposed.status_code == 201, proposed.text
    attainment = test_client.get(
        f"/plans/{plan}/attainment", headers=headers["vp"],
        params={"min_position": proposed.json()["position"]},
    ).json()  # fmt: skip
    nodes = {n["path"]: n for n in attainment["nodes"]}
    assert attainment["unit"] == "mgr-north"
    assert nodes["total"]["actuals"]["revenue"] == "1000"  # not the south's 5,000
    assert nodes[node]["targets"]["revenue"] == "3000"  # a proposal changes nothing yet
    assert [(p["actor"], p["path"], p["targets"]) for p in attainment["proposals"]] == [
        ("rep-north", node, {"revenue": "2500"})
    ]
