"""Two API workers each cache a deal: a command refused on a cached copy another process
has since changed is decided again on the stored deal, not answered 422."""

from __future__ import annotations

from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.opportunity import Opportunity
from commands.ledger import SalesLedger
from services.settings import Settings
from tests.conftest import build_team
from tests.integration.test_ledger_application import open_deal


def test_a_refusal_on_a_stale_cached_deal_is_decided_again(store_settings: Settings) -> None:
    first = SalesLedger(env=store_settings.event_store_env())
    build_team(first)
    deal = open_deal(first)
    first.qualify_opportunity(deal, dict.fromkeys(QUALIFICATION_CRITERIA, True), actor="rep1")
    first.advance_stage(deal, 2, actor="rep1")  # cached in ``first`` at stage 2
    second = SalesLedger(env=store_settings.event_store_env())
    second.advance_stage(deal, 3, actor="rep1")
    second.advance_stage(deal, 2, "back: the customer paused", actor="rep1")
    second.advance_stage(deal, 3, actor="rep1")
    # ``first`` still believes stage 2: "back to 2" is no refusal once the store is read.
    first.advance_stage(deal, 2, "back again", actor="rep1")
    assert second.read(Opportunity, deal).stage == 2
    for ledger in (first, second):
        ledger.close()
