"""The dashboard in a real browser, on the demo data: sign-in per role, the same figures
as the API, stage moves recorded with their reason and shown live, a rep kept to their
own deals, the as-of control, no console errors, and a screenshot of every page."""

from __future__ import annotations

import re
from datetime import timedelta
from uuid import UUID

import pytest
from playwright.sync_api import Page, expect

from aggregates.opportunity import Opportunity
from services.cli import main
from services.read_store import open_read_store
from services.web.rendering import money
from services.web.session import issue_sign_in_link
from tests.browser.conftest import Console, Dashboard, screenshot

PAGES = {
    "rep-north-1": ["/web/", "/web/pipeline", "/web/forecasts", "/web/plans", "/web/monitoring"],
    "mgr-north": [
        "/web/", "/web/pipeline", "/web/changes", "/web/forecasts", "/web/forecasts/errors",
        "/web/win-loss", "/web/plans", "/web/monitoring",
    ],
    "auditor": [
        "/web/pipeline", "/web/changes", "/web/forecasts", "/web/forecasts/errors",
        "/web/win-loss", "/web/plans", "/web/monitoring", "/web/audit",
    ],
}  # fmt: skip


def figure(page: Page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"]').first.inner_text().strip()


def test_each_role_signs_in_and_sees_its_pages(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, console = page
    for person, paths in PAGES.items():
        dashboard.sign_in(browser_page, person)
        for path in paths:
            response = browser_page.goto(dashboard.url + path)
            assert response is not None and response.status == 200, (person, path)
            expect(browser_page.locator("h1")).to_be_visible()
            name = path.strip("/").replace("/", "-") or "home"
            screenshot(browser_page, f"{person}-{name}")
        nav = browser_page.get_by_role("navigation", name="Main")
        assert (nav.get_by_role("link", name="Audit").count() == 1) == (person == "auditor")
        oversees = person != "rep-north-1"
        assert (nav.get_by_role("link", name="Changes").count() == 1) == oversees
        assert (nav.get_by_role("link", name="Win/loss").count() == 1) == oversees
        browser_page.get_by_role("button", name="Sign out").click()
        expect(browser_page).to_have_url(re.compile(r"/web/signin"))
    assert console.errors == []


def test_pages_show_the_apis_figures(dashboard: Dashboard, page: tuple[Page, Console]) -> None:
    browser_page, console = page
    dashboard.sign_in(browser_page, "mgr-north")
    with dashboard.api("mgr-north") as api:
        browser_page.goto(f"{dashboard.url}/web/pipeline?region=north&period=2026")
        funnel = api.get(
            "/funnel", params={"team": "mgr-north", "region": "north", "close_period": "2026"}
        ).json()
        assert figure(browser_page, "open_amount") == money(funnel["open_amount"])
        assert figure(browser_page, "open_count") == str(funnel["open_count"])
        for stage in funnel["stages"][:7]:
            assert figure(browser_page, f"stage-{stage['stage']}-count") == str(stage["count"])
        browser_page.goto(f"{dashboard.url}/web/monitoring")
        stale = api.get(
            "/monitoring/stale-deals", params={"team": "mgr-north", "limit": 1000}
        ).json()
        assert stale["next_cursor"] is None
        assert figure(browser_page, "stale_total") == str(len(stale["items"]))
        browser_page.goto(f"{dashboard.url}/web/forecasts")
        period = browser_page.locator('select[name="period"]').input_value()
        report = api.get(f"/forecasts/{period}").json()
        assert figure(browser_page, "top_adjusted") == money(report["top_level_adjusted"])
        for person in report["people"]:
            rollup = figure(browser_page, f"rollup-{person['person_id']}")
            assert rollup == money(person["rollup_adjusted"])
        shown = browser_page.locator('[data-figure^="rollup-"]').evaluate_all(
            "nodes => nodes.map(n => n.dataset.figure.slice('rollup-'.length))"
        )
        assert sorted(shown) == sorted(p["person_id"] for p in report["people"])  # subtree only
        screenshot(browser_page, "forecasts-compared")
        browser_page.goto(f"{dashboard.url}/web/plans")
        plan_id = browser_page.locator('select[name="plan"]').input_value()
        attainment = api.get(f"/plans/{plan_id}/attainment").json()
        for node in attainment["nodes"]:
            shown = figure(browser_page, f"actual-{node['path']}-revenue")
            assert shown == money(node["actuals"]["revenue"]), node["path"]
        assert attainment["proposals"], "the demo's reps propose their part of the plan"
        for proposal in attainment["proposals"]:
            shown_proposal = browser_page.locator(f'[data-figure="proposal-{proposal["path"]}"]')
            assert shown_proposal.count() >= 1, proposal["path"]
        quota = next(
            n for n in attainment["nodes"] if n["dimensions"].get("employee") == "rep-north-3"
        )
        browser_page.goto(f"{dashboard.url}/web/forecasts")
        assert figure(browser_page, "plan-target-rep-north-3") == money(quota["targets"]["revenue"])
        browser_page.goto(f"{dashboard.url}/web/plans")
        resources = api.get(f"/plans/{plan_id}/customer-resources").json()
        assert figure(browser_page, "remaining") == money(resources["remaining"])
        deal_id = _a_deal_of(dashboard, "rep-north-3", min_events=2)
        browser_page.goto(f"{dashboard.url}/web/deals/{deal_id}")
        state = api.get(f"/opportunities/{deal_id}").json()["state"]
        assert figure(browser_page, "stage") == str(state["stage"])
        history = api.get(f"/opportunities/{deal_id}/history").json()
        assert figure(browser_page, "events") == str(len(history))
    assert console.errors == []


def test_a_stage_move_on_the_board_is_recorded_and_shown_live(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    board, console = page
    owner, deal_id, stage = _a_deal_beyond_stage_2(dashboard)
    dashboard.sign_in(board, owner)
    watcher = board.context.new_page()
    board.goto(f"{dashboard.url}/web/pipeline")
    watcher.goto(f"{dashboard.url}/web/pipeline")
    watcher.evaluate("window.notReloaded = true")
    card = board.locator(f'[data-deal="{deal_id}"]')
    before = {n: int(figure(watcher, f"stage-{n}-count")) for n in (stage - 1, stage)}

    card.get_by_role("button").click()
    dialog = board.get_by_role("dialog")
    dialog.get_by_label("To stage").select_option(str(stage - 1))
    dialog.get_by_role("button", name="Record the move").click()
    expect(dialog.get_by_label("Reason")).to_have_attribute("aria-required", "true")
    assert board.evaluate("document.getElementById('move-reason').validity.valueMissing")
    dialog.get_by_label("Reason").fill("budget moved to next year")
    dialog.get_by_role("button", name="Record the move").click()
    expect(dialog).to_be_hidden()

    expect(watcher.locator(f'[data-figure="stage-{stage}-count"]')).to_have_text(
        str(before[stage] - 1), timeout=5000
    )
    expect(watcher.locator(f'[data-figure="stage-{stage - 1}-count"]')).to_have_text(
        str(before[stage - 1] + 1)
    )
    moved = watcher.locator(f'.column[data-stage="{stage - 1}"] [data-deal="{deal_id}"]')
    expect(moved).to_have_count(1)
    assert watcher.evaluate("window.notReloaded") is True
    last = list(dashboard.ledger.stored_events(_uuid(deal_id)))[-1]
    assert type(last).__name__ == "StageAdvanced"
    recorded = (last.to_stage, last.reason, last.actor)  # type: ignore[attr-defined]
    assert recorded == (stage - 1, "budget moved to next year", owner)
    screenshot(watcher, "pipeline-after-live-move")
    assert console.errors == []


def test_a_rep_never_sees_another_reps_deal(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, _ = page
    me, other = _two_reps_with_open_deals(dashboard)
    dashboard.sign_in(browser_page, me)
    browser_page.goto(f"{dashboard.url}/web/pipeline")
    owners = browser_page.locator(".card .meta").all_inner_texts()
    assert owners and all(f"· {me} ·" in text for text in owners)
    filtered = browser_page.goto(f"{dashboard.url}/web/pipeline?owner={other}")
    with dashboard.api(me) as api:
        by_api = api.get("/funnel", params={"owner": other})
    assert filtered is not None and filtered.status == by_api.status_code == 403
    assert browser_page.locator(".card").count() == 0
    response = browser_page.goto(f"{dashboard.url}/web/deals/{_a_deal_of(dashboard, other)}")
    assert response is not None and response.status == 403
    assert other not in browser_page.locator("main").inner_text()
    missing = browser_page.goto(f"{dashboard.url}/web/deals/00000000-0000-0000-0000-000000000000")
    assert missing is not None and missing.status == 403
    browser_page.goto(f"{dashboard.url}/web/monitoring")
    watched = browser_page.locator("main table").first.locator("tbody tr td:nth-child(2)")
    assert all(text == me for text in watched.all_inner_texts())
    refused = browser_page.goto(f"{dashboard.url}/web/audit")
    assert refused is not None and refused.status == 403
    screenshot(browser_page, "rep-refused")


def test_the_as_of_control_shows_an_earlier_state(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, console = page
    dashboard.sign_in(browser_page, "mgr-north")
    deal_id = _a_deal_of(dashboard, "rep-north-3", min_events=4)
    events = list(dashboard.ledger.stored_events(_uuid(deal_id)))
    browser_page.goto(f"{dashboard.url}/web/deals/{deal_id}")
    assert figure(browser_page, "events") == str(len(events))
    moment = events[1].timestamp + timedelta(seconds=1)
    browser_page.get_by_label("As of (UTC)").fill(moment.strftime("%Y-%m-%dT%H:%M:%S"))
    browser_page.get_by_role("button", name="Show").click()
    expect(browser_page.get_by_role("note")).to_contain_text("as it was at")
    assert figure(browser_page, "events") == "2"
    assert figure(browser_page, "stage") == str(
        dashboard.ledger.load_as_of(Opportunity, deal_id, moment).stage
    )
    screenshot(browser_page, "deal-as-of")
    assert console.errors == []


def test_sign_in_links_work_once_and_forms_need_their_csrf_token(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, _ = page
    link = issue_sign_in_link(dashboard.ledger, "rep-north-1", dashboard.url)
    browser_page.goto(link)
    browser_page.get_by_role("button", name="Continue to the dashboard").click()
    expect(browser_page.locator("h1")).to_have_text("My home")
    cookies = {c["name"]: c for c in browser_page.context.cookies()}
    session = cookies["salesledger_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    browser_page.get_by_role("button", name="Sign out").click()
    browser_page.goto(link)
    browser_page.get_by_role("button", name="Continue to the dashboard").click()
    expect(browser_page.get_by_role("alert")).to_contain_text("already used")
    seller, _ = _two_reps_with_open_deals(dashboard)
    dashboard.sign_in(browser_page, seller)
    deal = _a_deal_of(dashboard, seller)
    forged = browser_page.request.post(
        f"{dashboard.url}/web/deals/{deal}/stage", form={"to_stage": "1", "csrf": "forged"}
    )
    assert forged.status == 403


def test_pages_read_at_phone_width(dashboard: Dashboard, page: tuple[Page, Console]) -> None:
    browser_page, console = page
    browser_page.set_viewport_size({"width": 390, "height": 844})
    seller, _ = _two_reps_with_open_deals(dashboard)
    dashboard.sign_in(browser_page, seller)
    browser_page.goto(f"{dashboard.url}/web/pipeline")
    width = browser_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    browser_page.keyboard.press("Tab")
    expect(browser_page.locator(".skip")).to_be_focused()
    screenshot(browser_page, "phone-pipeline")
    move = browser_page.locator(".card .move").first
    move.focus()
    browser_page.keyboard.press("Enter")
    expect(browser_page.get_by_role("dialog")).to_be_visible()
    expect(browser_page.get_by_label("To stage")).to_be_focused()
    browser_page.keyboard.press("Escape")
    expect(browser_page.get_by_role("dialog")).to_be_hidden()
    expect(move).to_be_focused()
    assert console.errors == []


def _uuid(text: str) -> UUID:
    return UUID(text)


def _a_deal_of(dashboard: Dashboard, owner: str, min_events: int = 1) -> str:
    with open_read_store(dashboard.settings).transaction() as tx:
        rows = tx.execute(
            "SELECT opportunity_id FROM funnel_opportunities WHERE owner_id = %s "
            "AND status = 'open' ORDER BY opportunity_id",
            [owner],
        )
    for row in rows:
        deal_id = str(row["opportunity_id"])
        if len(list(dashboard.ledger.stored_events(_uuid(deal_id)))) >= min_events:
            return deal_id
    raise AssertionError(f"no open deal of {owner} with {min_events} events")


def _a_deal_beyond_stage_2(dashboard: Dashboard) -> tuple[str, str, int]:
    """An open deal at stage 3 or later that is among its owner's largest (on the board)."""
    with open_read_store(dashboard.settings).transaction() as tx:
        rows = tx.execute(
            "SELECT owner_id, opportunity_id, stage FROM funnel_opportunities "
            "WHERE status = 'open' AND qualification = 'qualified' AND stage >= 3 "
            "ORDER BY amount DESC LIMIT 1"
        )
    return str(rows[0]["owner_id"]), str(rows[0]["opportunity_id"]), int(rows[0]["stage"])


def _two_reps_with_open_deals(dashboard: Dashboard) -> tuple[str, str]:
    with open_read_store(dashboard.settings).transaction() as tx:
        rows = tx.execute(
            "SELECT owner_id, COUNT(*) AS n FROM funnel_opportunities WHERE status = 'open' "
            "AND qualification <> 'nurturing' AND owner_id LIKE 'rep-%' "
            "GROUP BY owner_id ORDER BY n DESC, owner_id"
        )
    return str(rows[0]["owner_id"]), str(rows[1]["owner_id"])


def test_the_cli_prints_a_sign_in_link_that_works(
    dashboard: Dashboard,
    page: tuple[Page, Console],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    browser_page, console = page
    monkeypatch.setenv("LEDGER_STORE", "sqlite")
    monkeypatch.setenv("LEDGER_SQLITE_PATH", dashboard.settings.sqlite_path)
    assert main(["signin-link", "auditor", "--base-url", dashboard.url]) == 0
    link = capsys.readouterr().out.strip().split(": ", 1)[1]
    browser_page.goto(link)
    browser_page.get_by_role("button", name="Continue to the dashboard").click()
    expect(browser_page.locator("h1")).to_have_text("Pipeline")
    assert console.errors == []
