"""The sales funnel: every opportunity's current stage and value, and its stage history.

- ``fold.py``: the one fold of a deal's funnel state (its row after each event), which
  the projection, the as-of queries and the other read models reuse;
- ``projection.py``: the tables and how a batch of events changes them;
- ``filters.py``: which deals a query counts;
- ``queries.py``: the live funnel;
- ``versions.py``: each deal's earlier states with the event time they held over;
- ``as_of.py``: the funnel as of a past moment, from those versions (or folded from the
  events, the rule's reference);
- ``health.py``: funnel health against past month-ends.
"""

from __future__ import annotations

from projections.funnel.as_of import (
    fold_as_of,
    fold_deals_as_of,
    fold_funnel_as_of,
    query_funnel_as_of,
)
from projections.funnel.filters import FunnelFilter
from projections.funnel.fold import (
    DEAL_COLUMNS,
    FUNNEL_EVENT_TYPES,
    FUNNEL_TOPICS,
    INTERVAL_COLUMNS,
    evolve_deal,
    funnel_status,
    is_nurturing,
)
from projections.funnel.health import (
    DEFAULT_HISTORY_MONTHS,
    FunnelHealth,
    FunnelHealthStage,
    past_month_ends,
    query_funnel_health,
)
from projections.funnel.projection import DIMENSION_KEYS, FunnelProjection
from projections.funnel.queries import (
    Funnel,
    FunnelStage,
    StageTotals,
    funnel_from_deals,
    query_funnel,
)

__all__ = [
    "DEAL_COLUMNS",
    "DEFAULT_HISTORY_MONTHS",
    "DIMENSION_KEYS",
    "FUNNEL_EVENT_TYPES",
    "FUNNEL_TOPICS",
    "INTERVAL_COLUMNS",
    "Funnel",
    "FunnelFilter",
    "FunnelHealth",
    "FunnelHealthStage",
    "FunnelProjection",
    "FunnelStage",
    "StageTotals",
    "evolve_deal",
    "fold_as_of",
    "fold_deals_as_of",
    "fold_funnel_as_of",
    "funnel_from_deals",
    "funnel_status",
    "is_nurturing",
    "past_month_ends",
    "query_funnel",
    "query_funnel_as_of",
    "query_funnel_health",
]
