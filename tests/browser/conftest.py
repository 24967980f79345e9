"""A live dashboard on a small demo data set, and Debian's Chromium driven by Playwright.

The server is the real app (``create_app``) under uvicorn on a free loopback port, with
its in-process projection worker, on an embedded SQLite file. The browser is
``/usr/bin/chromium`` (scripts/test installs it); if it cannot start, the tests fail.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from commands.ledger import SalesLedger
from projections.registry import projection_names
from projections.runner import wait_for_position
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.demo import DemoBuilder
from services.read_store import open_read_store
from services.settings import Settings
from services.web.session import issue_sign_in_link

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@dataclass
class Dashboard:
    """The running server: its base URL, its ledger, and API tokens per person."""

    url: str
    ledger: SalesLedger
    settings: Settings

    def api(self, person_id: str) -> httpx.Client:
        _, token = self.ledger.issue_token(person_id, actor="system")
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def sign_in(self, page: Page, person_id: str) -> None:
        page.goto(issue_sign_in_link(self.ledger, person_id, self.url))
        page.get_by_role("button", name="Continue to the dashboard").click()
        page.wait_for_load_state("load")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    path = tmp_path_factory.mktemp("dashboard") / "ledger.db"
    settings = Settings(store="sqlite", sqlite_path=str(path))
    ledger = build_ledger(settings)
    DemoBuilder(ledger, customers=30, opportunities=160, days=300, progress=False).build()
    app = create_app(settings, ledger)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the dashboard server did not start")
        time.sleep(0.05)
    database = open_read_store(settings)
    last = ledger.recorder.max_notification_id() or 0
    for name in projection_names():
        wait_for_position(database, name, last, timeout=120)
    yield Dashboard(f"http://127.0.0.1:{port}", ledger, settings)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as error:  # noqa: BLE001 - any failure to start is fatal here
            pytest.fail(f"Chromium could not start: {error}")
        yield launched
        launched.close()


@dataclass
class Console:
    """Every console error and uncaught exception of a page."""

    errors: list[str]


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    opened = context.new_page()
    console = Console([])
    opened.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: console.errors.append(str(e)))
    yield opened, console
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
