"""The dashboard's pure helpers: next steps, safe redirects, CSRF tokens, formatting."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from services.web.deps import safe_next
from services.web.pages.home import next_step
from services.web.rendering import as_json, money
from services.web.session import csrf_for, csrf_matches, token_id_of

TODAY = date(2026, 6, 1)


def deal(**changes: Any) -> dict[str, Any]:
    return {
        "stage": 3,
        "qualification": "qualified",
        "expected_close": "2026-09-30",
        **changes,
    }


def test_next_steps_follow_the_deals_state() -> None:
    assert "nurturing" in next_step(deal(qualification="nurturing"), TODAY, None)
    assert "close date has passed" in next_step(deal(expected_close="2026-05-31"), TODAY, 3)
    assert "no activity for 20 days" in next_step(deal(), TODAY, 20)
    assert "qualify it" in next_step(deal(stage=1, qualification="pending"), TODAY, None)
    assert "record the win" in next_step(deal(stage=7), TODAY, None)
    assert next_step(deal(stage=4), TODAY, 2).startswith("work stage 4: shortlisted")


def test_only_local_paths_are_followed_after_sign_in() -> None:
    assert safe_next("/web/deals/1?as_of=x") == "/web/deals/1?as_of=x"
    for unsafe in (
        None,
        "",
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:x",
    ):
        assert safe_next(unsafe) == "/web/"


def test_csrf_tokens_belong_to_their_session() -> None:
    token = csrf_for("sl_session_a")
    assert csrf_matches("sl_session_a", token)
    assert not csrf_matches("sl_session_b", token)
    assert not csrf_matches("sl_session_a", None)
    assert token_id_of("sl_x") == token_id_of("sl_x") != token_id_of("sl_y")


def test_figures_and_script_data_are_formatted_safely() -> None:
    assert money(Decimal("1234567")) == "1,234,567"
    assert money("1234.5") == "1,234.50"
    assert money(None) == "0"
    assert "</script>" not in str(as_json({"title": "</script><script>alert(1)"}))
