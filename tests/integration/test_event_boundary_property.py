"""Whatever JSON a client sends through the commands, every event the ledger stores
can be processed by every consumer: decoded again, applied by every projection (on
PostgreSQL too, which refuses NUL in text), and encoded for Kafka within the size bound."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregates.errors import DomainError
from commands.ledger import CommandResult, SalesLedger
from events.limits import MAX_EVENT_BYTES, MESSAGE_OVERHEAD_BYTES
from events.messages import decode_message, encode_event
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.bootstrap import build_ledger
from services.read_store import open_read_store
from services.settings import Settings
from tests.conftest import build_team, wait_for_read_horizon

TEXT = st.text(
    st.characters(codec=None, exclude_categories=()), max_size=40
) | st.sampled_from(["\x00", "\ud800", "a\x7fb", "\u2028", "x" * 1200, "\t\n"])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


@pytest.fixture
def ledger_and_settings(store_settings: Settings) -> Iterator[tuple[SalesLedger, Settings]]:
    ledger = build_ledger(store_settings)
    build_team(ledger)
    yield ledger, store_settings
    ledger.close()


def _as_decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def _refused(command: Callable[[], CommandResult]) -> CommandResult | None:
    """The command's result; None if it was refused (a domain error: 4xx over HTTP)."""
    try:
        return command()
    except DomainError:
        return None


def _send(ledger: SalesLedger, name: Any, value: Any, reason: Any) -> None:
    """The arbitrary values through a few commands with free-form fields; each is
    either refused or stored, never stored half-processable."""
    text, why = str(name), str(reason)
    customer = _refused(
        lambda: ledger.register_customer(
            name=text, source=why, profile={"x": value}, actor="rep1"
        )
    )
    _refused(lambda: ledger.add_person(text[:50] or "p", why, "sales_rep", "mgr", actor="admin"))
    _refused(
        lambda: ledger.draft_plan(
            name=text, period="2026", targets={"revenue": _as_decimal(value)}, actor="admin"
        )
    )
    if customer is None:
        return
    customer_id = customer.aggregate_id
    _refused(lambda: ledger.supplement_customer(customer_id, {text: value}, actor="rep1"))
    _refused(lambda: ledger.classify_customer(customer_id, "A", why, actor="rep1"))
    _refused(lambda: ledger.log_customer_activity(customer_id, text, why, actor="rep1"))


def test_every_stored_event_is_processable(
    ledger_and_settings: tuple[SalesLedger, Settings],
) -> None:
    ledger, store_settings = ledger_and_settings

    @given(name=TEXT, value=JSON_VALUES, reason=TEXT)
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def commands_of(name: Any, value: Any, reason: Any) -> None:
        _send(ledger, name, value, reason)

    commands_of()
    wait_for_read_horizon(ledger)
    notifications = ledger.recorder.select_notifications(1, 100_000)
    assert len(notifications) > 20  # the team (8) and what the commands stored
    for notification in notifications:
        event = ledger.mapper.to_domain_event(notification)
        message = encode_event(event, notification.id, topic_prefix="t")
        size = len(message.value) + len(message.key) + sum(len(v) for _, v in message.headers)
        assert size <= MAX_EVENT_BYTES + MESSAGE_OVERHEAD_BYTES
        received = decode_message(message.headers, message.value)
        assert received.position == notification.id
        assert json.loads(message.value) == received.data
    database = open_read_store(store_settings)
    runner = ProjectionRunner(ledger, database, all_projections())
    runner.catch_up()
    assert set(runner.positions().values()) == {notifications[-1].id}
    database.close()
