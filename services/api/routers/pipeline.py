"""What changed in the pipeline between two moments (the waterfall), scoped to the caller."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from aggregates.errors import RuleViolationError
from projections.pipeline_changes import PipelineChanges, pipeline_changes
from services.access import visible_owners
from services.analytics.events import recorded_events
from services.api.dependencies import LedgerDep
from services.api.filters import FunnelFilterDep
from services.api.security import CurrentActor

router = APIRouter(prefix="/pipeline", tags=["pipeline"])


@router.get("/changes", response_model=PipelineChanges)
def get_pipeline_changes(
    ledger: LedgerDep,
    actor: CurrentActor,
    selection: FunnelFilterDep,
    from_moment: Annotated[datetime, Query(alias="from", description="T1 (ISO 8601)")],
    to_moment: Annotated[datetime, Query(alias="to", description="T2, after T1 (ISO 8601)")],
) -> PipelineChanges:
    """Pipeline at T1, every change (new, won, lost, moved, pushed, amount, stage, owner)
    with the deals behind it, and pipeline at T2; reps and managers see their subtree."""
    owners = visible_owners(actor, ledger.organisation(fresh=False), selection.owner_ids)
    scoped = replace(selection, owner_ids=owners)
    try:
        return pipeline_changes(recorded_events(ledger), from_moment, to_moment, scoped)
    except ValueError as error:
        raise RuleViolationError(f"to: {error} (from)") from None
