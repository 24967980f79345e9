"""Time to first render of each dashboard page, in Debian's Chromium, at demo size.

Builds the demo data set (or opens an existing SQLite ledger with ``--sqlite``), serves
the real app on a loopback port, signs in as each role through a one-time link, and
loads every page ``--rounds`` times. For each load it records, from the browser's own
Navigation Timing and Paint Timing entries, the time to first byte (server render) and
to first contentful paint, and reports p50 and p95 per page.

    .venv/bin/python -m bench.dashboard                 # the demo: 3000 opportunities
    .venv/bin/python -m bench.dashboard --opportunities 10000 --customers 1200
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import Page, sync_playwright

from commands.ledger import SalesLedger
from projections.registry import projection_names
from projections.runner import wait_for_position
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.database import Database
from services.demo import DemoBuilder
from services.read_store import open_read_store
from services.settings import Settings
from services.web.session import issue_sign_in_link

PAGES = {
    "rep-north-1": ["/web/", "/web/pipeline"],
    "mgr-north": ["/web/pipeline", "/web/forecasts", "/web/plans", "/web/monitoring"],
    "auditor": ["/web/pipeline", "/web/audit"],
}
TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  return [nav.responseStart, paint ? paint.startTime : nav.loadEventEnd];
}"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure(page: Page, url: str, rounds: int) -> tuple[list[float], list[float]]:
    first_byte, first_paint = [], []
    for _ in range(rounds):
        page.goto(url, wait_until="load")
        ttfb, fcp = page.evaluate(TIMING)
        first_byte.append(float(ttfb))
        first_paint.append(float(fcp))
    return first_byte, first_paint


LIVE_ROUNDS = 10


def _live_latency(page: Page, base: str, ledger: SalesLedger, database: Database) -> list[float]:
    """Seconds from a stage move through the API to the open board showing it (no reload)."""
    with database.transaction() as tx:
        row = tx.execute(
            "SELECT opportunity_id, stage, owner_id FROM funnel_opportunities "
            "WHERE status = 'open' AND qualification = 'qualified' AND stage BETWEEN 2 AND 6 "
            "AND owner_id LIKE 'rep-north-%' ORDER BY opportunity_id LIMIT 1"
        )[0]
    deal, stage = str(row["opportunity_id"]), int(row["stage"])
    _, token = ledger.issue_token(str(row["owner_id"]), actor="system")
    page.goto(f"{base}/web/pipeline", wait_until="load")
    latencies = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
        for i in range(LIVE_ROUNDS):
            target = stage + 1 if i % 2 == 0 else stage
            figure = f'[data-figure="stage-{target}-count"]'
            before = page.locator(figure).inner_text()
            started = time.perf_counter()
            api.post(
                f"/opportunities/{deal}/stage",
                json={"to_stage": target, "reason": "bench: live latency"},
            ).raise_for_status()
            page.wait_for_function(
                "([selector, before]) => document.querySelector(selector).textContent !== before",
                arg=[figure, before],
            )
            latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", help="an existing ledger file (else a new demo is built)")
    parser.add_argument("--opportunities", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    path = args.sqlite or str(Path(tempfile.mkdtemp()) / "ledger.db")
    settings = Settings(store="sqlite", sqlite_path=path)
    ledger = build_ledger(settings)
    if not ledger.recorder.max_notification_id():
        started = time.perf_counter()
        DemoBuilder(
            ledger, customers=args.customers, opportunities=args.opportunities, progress=False
        ).build()
        print(
            f"demo of {args.opportunities} opportunities built in "
            f"{time.perf_counter() - started:.0f} s"
        )
    app = create_app(settings, ledger)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    database = open_read_store(settings)
    last = ledger.recorder.max_notification_id() or 0
    for name in projection_names():
        wait_for_position(database, name, last, timeout=1800)
    base = f"http://127.0.0.1:{port}"
    print(f"{'page':<34} {'first byte p50':>15} {'p95':>8} {'first paint p50':>16} {'p95':>8}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        for person, paths in PAGES.items():
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(issue_sign_in_link(ledger, person, base))
            page.get_by_role("button", name="Continue to the dashboard").click()
            page.wait_for_load_state("load")
            for path in paths:
                ttfb, fcp = _measure(page, base + path, args.rounds)
                print(
                    f"{person + ' ' + path:<34} {statistics.median(ttfb):>12.0f} ms "
                    f"{percentile(ttfb, 0.95):>5.0f} ms {statistics.median(fcp):>13.0f} ms "
                    f"{percentile(fcp, 0.95):>5.0f} ms"
                )
            page.close()
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(issue_sign_in_link(ledger, "mgr-north", base))
        page.get_by_role("button", name="Continue to the dashboard").click()
        live = _live_latency(page, base, ledger, database)
        print(
            f"live: command to board updated, {LIVE_ROUNDS} moves: p50 "
            f"{statistics.median(live) * 1000:.0f} ms, p95 {percentile(live, 0.95) * 1000:.0f} ms"
        )
        browser.close()
    server.should_exit = True
    thread.join(timeout=10)


if __name__ == "__main__":
    main()
