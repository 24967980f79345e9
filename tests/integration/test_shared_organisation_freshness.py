"""Requests that waited share a look at the organisation (``SharedOrganisation.get`` with
``since``), and still never see it older than it was when they arrived: a token revoked
through another process before a request arrived is refused, whoever looked last."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from commands.ledger import SalesLedger
from services.settings import Settings
from tests.conftest import build_team

pytestmark = pytest.mark.integration


@pytest.fixture
def two_processes(postgres_settings: Settings) -> Iterator[tuple[SalesLedger, SalesLedger]]:
    """Two ledgers on one database, as two API processes have: each its own caches."""
    first = SalesLedger(env=postgres_settings.event_store_env())
    build_team(first)
    second = SalesLedger(env=postgres_settings.event_store_env())
    yield first, second
    first.close()
    second.close()


def _looks(ledger: SalesLedger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the looks at the store for newer organisation events."""
    shared = ledger._shared  # noqa: SLF001 - the cache under test
    looks: list[int] = []
    events_after = shared._events_after  # noqa: SLF001

    def counting(version: int):  # type: ignore[no-untyped-def]
        looks.append(version)
        return events_after(version)

    monkeypatch.setattr(shared, "_events_after", counting)
    return looks


def test_a_request_that_arrived_before_a_finished_look_shares_it(
    two_processes: tuple[SalesLedger, SalesLedger], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = two_processes
    _, token = first.issue_token("rep1", actor="admin")
    looks = _looks(first, monkeypatch)
    arrived = time.monotonic()
    assert first.authenticate(token, since=arrived) == "rep1"
    assert first.authenticate(token, since=arrived) == "rep1"  # waited meanwhile
    assert len(looks) == 1
    assert first.authenticate(token, since=time.monotonic()) == "rep1"  # arrived later
    assert first.authenticate(token) == "rep1"  # no arrival given: a look of its own
    assert len(looks) == 3


def test_a_token_revoked_elsewhere_before_the_request_arrived_is_refused(
    two_processes: tuple[SalesLedger, SalesLedger],
) -> None:
    first, second = two_processes
    token_id, token = second.issue_token("rep2", actor="admin")
    earlier = time.monotonic()
    assert first.authenticate(token, since=earlier) == "rep2"
    second.revoke_token(token_id, "left the laptop on a train", actor="admin")
    assert first.authenticate(token, since=earlier) == "rep2"  # arrived before the revocation
    assert first.authenticate(token, since=time.monotonic()) is None
