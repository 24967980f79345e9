"""The "what changed and why" views in a real browser, on the demo data: pipeline changes
as a waterfall, field history and flags on the record pages, win/loss, forecast errors,
and the forecasts' categories and quotas. Each shows the API's figures for the same query,
keeps a rep to their own deals, logs no console error, and leaves a screenshot."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from playwright.sync_api import Page, expect

from services.read_store import open_read_store
from services.web.rendering import money, percent
from tests.browser.conftest import Console, Dashboard, screenshot

WINDOW = {"from": "2026-05-01", "to": "2026-06-30"}
API_WINDOW = {"from": "2026-05-01T00:00:00Z", "to": "2026-07-01T00:00:00Z"}
ERRORS_AS_OF = "2026-07-15T00:00:00"


def figure(page: Page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"]').first.inner_text().strip()


def figures(page: Page) -> dict[str, str]:
    """Every data-figure of the page (the first of each name), read in one round trip."""
    found: dict[str, str] = page.locator("[data-figure]").evaluate_all(
        "nodes => { const out = {}; for (const n of nodes) "
        "if (!(n.dataset.figure in out)) out[n.dataset.figure] = n.innerText.trim(); "
        "return out; }"
    )
    return found


def deals_linked(page: Page, selector: str) -> list[str]:
    hrefs: list[str] = page.locator(f"{selector} a[href^='/web/deals/']").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('href').split('/').pop())"
    )
    return hrefs


def test_changes_show_the_apis_waterfall(dashboard: Dashboard, page: tuple[Page, Console]) -> None:
    browser_page, console = page
    with dashboard.api("mgr-north") as api:
        changes = api.get("/pipeline/changes", params=API_WINDOW).json()
        flags = api.get("/pipeline/flags").json()
    dashboard.sign_in(browser_page, "mgr-north")
    nav = browser_page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Changes").click()
    expect(browser_page.locator("h1")).to_have_text("What changed in the pipeline")
    browser_page.get_by_label("From (start of day, UTC)").fill(WINDOW["from"])
    browser_page.get_by_label("To (end of day, UTC)").fill(WINDOW["to"])
    browser_page.get_by_role("button", name="Show").click()
    expect(browser_page.get_by_label("To (end of day, UTC)")).to_have_value(WINDOW["to"])
    shown = figures(browser_page)
    assert changes["reconciled"] and shown["reconciled"] == "reconciled"
    for end in ("start", "end"):
        assert shown[f"{end}-count"] == str(changes[end]["count"])
        assert shown[f"{end}-amount"] == money(changes[end]["amount"])
        assert shown[f"{end}-weighted"] == money(changes[end]["weighted_amount"])
    moved = 0
    for step in changes["steps"]:
        name = step["step"]
        assert int(shown[f"step-{name}-count"]) == step["count"], name
        assert shown[f"step-{name}-amount"] == money(step["amount"]), name
        assert shown[f"step-{name}-weighted"] == money(step["weighted_amount"]), name
        linked = deals_linked(browser_page, f'tr[data-step="{name}"]')
        assert linked == [d["opportunity_id"] for d in step["deals"]], name
        moved += len(step["deals"])
    assert moved > 0
    assert shown["pushed"] == str(len(changes["pushed"]))
    assert shown["flagged"] == str(len(flags))
    owners = {d["owner_id"] for s in changes["steps"] for d in s["deals"]}
    assert owners and all(o.startswith("rep-north-") or o == "mgr-north" for o in owners)
    assert browser_page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-chart=waterfall]')) !== undefined"
    )
    step = next(s for s in changes["steps"] if s["deals"])
    summary = browser_page.locator(f'tr[data-step="{step["step"]}"] summary')
    summary.focus()
    browser_page.keyboard.press("Enter")
    first = browser_page.locator(f'tr[data-step="{step["step"]}"] .deal-list a').first
    expect(first).to_be_visible()
    screenshot(browser_page, "mgr-north-changes")
    first.click()
    expect(browser_page).to_have_url(f"{dashboard.url}/web/deals/{step['deals'][0]['opportunity_id']}")
    for wrong in ("from=2026-07-01&to=2026-06-01", "from=soon", "measure=height", "period=Q9"):
        refused = browser_page.request.get(f"{dashboard.url}/web/changes?{wrong}")
        assert refused.status == 422, wrong
    assert console.errors == []


def test_a_deal_and_a_customer_show_their_field_history_and_flags(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, console = page
    dashboard.sign_in(browser_page, "mgr-north")
    deal_id, customer_id = _a_busy_deal_of(dashboard, "rep-north-")
    with dashboard.api("mgr-north") as api:
        deal = api.get(f"/aggregates/{deal_id}/field-history").json()
        customer = api.get(f"/aggregates/{customer_id}/field-history").json()
    browser_page.goto(f"{dashboard.url}/web/deals/{deal_id}")
    shown = figures(browser_page)
    assert shown["field-changes"] == str(len(deal["changes"]))
    assert shown["pushed_times"] == str(deal["flags"]["pushed_times"])
    assert Decimal(shown["amount_drop_percent"]) == Decimal(deal["flags"]["amount_drop_percent"])
    flagged = browser_page.locator("[data-flag]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.flag)"
    )
    assert flagged == deal["flags"]["flags"]
    rows = browser_page.locator("table.field-history tbody tr")
    newest = deal["changes"][-1]
    expect(rows.first).to_have_attribute("data-change", f"{newest['version']}-{newest['field']}")
    expect(rows.first).to_contain_text(newest["actor"])
    screenshot(browser_page, "mgr-north-deal-field-history")
    browser_page.goto(f"{dashboard.url}/web/customers/{customer_id}")
    assert figure(browser_page, "field-changes") == str(len(customer["changes"]))
    screenshot(browser_page, "mgr-north-customer-field-history")
    assert console.errors == []


def test_win_loss_shows_the_apis_figures(dashboard: Dashboard, page: tuple[Page, Console]) -> None:
    browser_page, console = page
    dashboard.sign_in(browser_page, "mgr-north")
    browser_page.goto(f"{dashboard.url}/web/win-loss?period=2026")
    with dashboard.api("mgr-north") as api:
        report = api.get("/win-loss", params={"close_period": "2026"}).json()
    shown = figures(browser_page)
    _same_outcomes(shown, "", [report["total"]], lost_only=False)
    assert report["total"]["won"] + report["total"]["lost"] > 0
    _same_outcomes(shown, "reason", report["lost_reasons"])
    _same_outcomes(shown, "competitor", report["competitors"])
    _same_outcomes(shown, "stage", report["lost_at_stage"])
    for dimension, rows in report["by"].items():
        _same_outcomes(shown, dimension, rows, lost_only=False)
    assert {o["key"] for o in report["by"]["owner_id"]} <= {
        f"rep-north-{k}" for k in range(1, 7)
    } | {"mgr-north"}
    assert browser_page.evaluate(
        "document.querySelectorAll('canvas[data-chart=bars]').length === 2 && "
        "[...document.querySelectorAll('canvas[data-chart=bars]')]"
        ".every(c => Chart.getChart(c) !== undefined)"
    )
    screenshot(browser_page, "mgr-north-win-loss")
    assert console.errors == []


def test_forecast_errors_show_the_apis_figures(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, console = page
    dashboard.sign_in(browser_page, "mgr-north")
    browser_page.goto(f"{dashboard.url}/web/forecasts?period=2026-Q2")
    browser_page.get_by_role("link", name="Forecast errors of 2026-Q2").click()
    browser_page.get_by_label("Forecasts as they stood at (UTC; empty: now)").fill(ERRORS_AS_OF)
    browser_page.get_by_role("button", name="Show").click()
    expect(browser_page.locator("h1")).to_have_text("Forecast errors 2026-Q2")
    with dashboard.api("mgr-north") as api:
        report = api.get("/forecasts/2026-Q2/errors", params={"as_of": ERRORS_AS_OF + "Z"}).json()
    people = report["people"]
    assert people and {p["person_id"] for p in people} <= {
        f"rep-north-{k}" for k in range(1, 7)
    } | {"mgr-north"}
    shown = figures(browser_page)
    assert shown["people"] == str(len(people))
    for person in people:
        name = f"err-{person['person_id']}"
        for field in ("forecast", "actual", "error"):
            assert shown[f"{name}-{field}"] == money(person[field]), (name, field)
        assert shown[f"{name}-accuracy"] == percent(person["accuracy"])
        for cause, amount in person["by_cause"].items():
            assert shown[f"{name}-{cause}"] == money(amount), (name, cause)
    assert browser_page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-chart=bars]')) !== undefined"
    )
    screenshot(browser_page, "mgr-north-forecast-errors")
    browser_page.get_by_role("link", name="Show each person's accuracy").click()
    columns = browser_page.locator('table[aria-labelledby="acc-h"] thead th.num')
    periods = columns.all_inner_texts()[:-1]
    assert periods and "2026-Q2" in periods
    with dashboard.api("mgr-north") as api:
        accuracy = api.get("/forecast-accuracy", params={"period": periods}).json()
    shown = figures(browser_page)
    for person in accuracy:
        pid = person["person_id"]
        assert shown[f"mae-{pid}"] == money(person["mean_absolute_error"]), pid
        for name, value in person["periods"].items():
            assert shown[f"accuracy-{pid}-{name}"] == percent(value), (pid, name)
    assert console.errors == []


def test_forecasts_show_categories_and_the_forecast_quota(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, console = page
    dashboard.sign_in(browser_page, "mgr-north")
    period = "2026-Q3"
    with dashboard.api("mgr-north") as api:
        done = api.post(
            f"/forecasts/{period}/people/rep-north-2/quota",
            json={"amount": "123456", "reason": "set for the browser test"},
        )
        assert done.status_code == 200, done.text
        report = api.get(
            f"/forecasts/{period}", params={"min_position": done.json()["position"]}
        ).json()
    browser_page.goto(f"{dashboard.url}/web/forecasts?period={period}")
    shown = figures(browser_page)
    assert shown["forecast-quota-rep-north-2"] == money("123456")
    categories = 0
    for person in report["people"]:
        pid = person["person_id"]
        quota = person["quota"]
        assert shown[f"forecast-quota-{pid}"] == (money(quota) if quota is not None else "—")
        for category, amount in person["by_category"].items():
            assert shown[f"category-{pid}-{category}"] == money(amount), (pid, category)
            categories += Decimal(amount) != 0
    assert categories > 0
    screenshot(browser_page, "mgr-north-forecast-categories")
    assert console.errors == []


def test_a_rep_sees_only_their_own_changes_win_loss_and_errors(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, console = page
    rep = "rep-north-1"
    dashboard.sign_in(browser_page, rep)
    nav = browser_page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Changes").count() == 0
    browser_page.get_by_role("link", name="What changed in my pipeline").click()
    expect(browser_page.locator("h1")).to_have_text("What changed in the pipeline")
    expect(browser_page.get_by_label("Owner", exact=True)).to_have_value(rep)
    browser_page.goto(f"{dashboard.url}/web/changes?" + _query(WINDOW))
    with dashboard.api(rep) as api:
        changes = api.get("/pipeline/changes", params=API_WINDOW).json()
        refused = api.get("/pipeline/changes", params={**API_WINDOW, "team": "mgr-south"})
        win_loss = api.get("/win-loss", params={"close_period": "2026"}).json()
        errors = api.get("/forecasts/2026-Q2/errors", params={"as_of": ERRORS_AS_OF + "Z"}).json()
    shown = figures(browser_page)
    assert shown["start-count"] == str(changes["start"]["count"])
    assert shown["end-amount"] == money(changes["end"]["amount"])
    owners = browser_page.locator(".deal-list .meta").all_inner_texts()
    assert all(text.startswith(f"{rep} ·") for text in owners)
    screenshot(browser_page, "rep-changes")
    response = browser_page.goto(f"{dashboard.url}/web/changes?team=mgr-south")
    assert response is not None and response.status == refused.status_code == 403
    assert "rep-south" not in browser_page.locator("main").inner_text()
    response = browser_page.goto(f"{dashboard.url}/web/win-loss?owner=rep-south-1")
    assert response is not None and response.status == 403
    browser_page.goto(f"{dashboard.url}/web/win-loss?period=2026")
    assert figure(browser_page, "total-won") == str(win_loss["total"]["won"])
    owners = browser_page.locator('[data-figure^="owner_id-"][data-figure$="-won"]').evaluate_all(
        "nodes => nodes.map(n => n.dataset.figure)"
    )
    assert owners == [f"owner_id-{rep}-won"] or owners == []
    screenshot(browser_page, "rep-win-loss")
    browser_page.goto(f"{dashboard.url}/web/forecasts/errors?period=2026-Q2&as_of={ERRORS_AS_OF}")
    people = browser_page.locator("tr[data-person]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.person)"
    )
    assert people == [p["person_id"] for p in errors["people"]] and set(people) <= {rep}
    refusals = [e for e in console.errors if "status of 403" in e]
    assert len(refusals) == 2 and console.errors == refusals  # the two refused pages only


def test_the_new_pages_read_at_phone_width(
    dashboard: Dashboard, page: tuple[Page, Console]
) -> None:
    browser_page, console = page
    browser_page.set_viewport_size({"width": 390, "height": 844})
    dashboard.sign_in(browser_page, "mgr-north")
    deal_id, _ = _a_busy_deal_of(dashboard, "rep-north-")
    for name, path in (
        ("changes", "/web/changes?measure=count&" + _query(WINDOW)),
        ("win-loss", "/web/win-loss"),
        ("forecast-errors", "/web/forecasts/errors?period=2026-Q2"),
        ("deal", f"/web/deals/{deal_id}"),
    ):
        browser_page.goto(dashboard.url + path)
        assert browser_page.evaluate("document.documentElement.scrollWidth") <= 390, name
        screenshot(browser_page, f"phone-{name}")
    assert console.errors == []


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


def _same_outcomes(
    shown: dict[str, str],
    group: str,
    rows: list[dict[str, Any]],
    lost_only: bool = True,
) -> None:
    """The rows' figures as the page shows them (``group`` empty: the totals)."""
    for row in rows:
        name = f"{group}-{row['key']}" if group else "total"
        assert shown[f"{name}-lost"] == str(row["lost"]), name
        assert shown[f"{name}-lost_amount"] == money(row["lost_amount"]), name
        if not lost_only:
            assert shown[f"{name}-won"] == str(row["won"]), name
            assert shown[f"{name}-won_amount"] == money(row["won_amount"]), name
            assert shown[f"{name}-win_rate"] == percent(row["win_rate"]), name


def _a_busy_deal_of(dashboard: Dashboard, owner_prefix: str) -> tuple[str, str]:
    """The deal of the team with the most events, and its customer."""
    with open_read_store(dashboard.settings).transaction() as tx:
        rows = tx.execute(
            "SELECT opportunity_id, customer_id FROM funnel_opportunities "
            "WHERE owner_id LIKE %s ORDER BY opportunity_id",
            [owner_prefix + "%"],
        )
    counted = [
        (len(list(dashboard.ledger.stored_events(UUID(str(r["opportunity_id"]))))), r)
        for r in rows
    ]
    best = max(counted, key=lambda item: item[0])[1]
    return str(best["opportunity_id"]), str(best["customer_id"])
