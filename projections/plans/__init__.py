"""Sales plans against results: targets along every decomposition dimension vs won
business, and the customer-resource plan (how many deals are needed at each stage now).

- ``projection.py``: the tables (plans, their targets, their revisions);
- ``attainment.py``: each node's targets against what was won;
- ``resource_plan.py``: the deals needed at each stage now to reach a node's target.
"""

from __future__ import annotations

from projections.plans.attainment import (
    NodeAttainment,
    PlanAttainment,
    PlanProposalView,
    PlanRevisionView,
    node_dimensions,
    query_plan_attainment,
)
from projections.plans.projection import ACTUAL_METRICS, PlanProjection
from projections.plans.resource_plan import (
    CustomerResourcePlan,
    StageRequirement,
    query_customer_resource_plan,
)

__all__ = [
    "ACTUAL_METRICS",
    "CustomerResourcePlan",
    "NodeAttainment",
    "PlanAttainment",
    "PlanProjection",
    "PlanProposalView",
    "PlanRevisionView",
    "StageRequirement",
    "node_dimensions",
    "query_customer_resource_plan",
    "query_plan_attainment",
]
