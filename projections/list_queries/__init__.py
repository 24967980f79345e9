"""Queries of the list read models (``projections.listings`` and the plans table):
filtered, scoped to the people whose records the caller may read, sorted, and paged by
keyset (the sort value and id of the last row seen), so a page costs the same however
deep into the list it is.

- ``paging.py``: sort orders, the page asked for, a query's conditions, one page of rows;
- ``opportunities.py``, ``customers.py`` (with search and fuzzy search), ``forecasts.py``,
  ``plans.py``: each list's filter, its item as the list shows it, its sorts and its query.
"""

from __future__ import annotations

from projections.list_queries.customers import (
    CUSTOMER_SORTS,
    FUZZY_SHARE,
    FUZZY_SORT,
    TOP,
    CustomerFilter,
    CustomerItem,
    customer_item,
    query_customers,
)
from projections.list_queries.forecasts import (
    FORECAST_SORTS,
    ForecastFilter,
    ForecastItem,
    forecast_item,
    query_forecasts,
)
from projections.list_queries.opportunities import (
    OPPORTUNITY_SORTS,
    OpportunityFilter,
    OpportunityItem,
    opportunity_item,
    query_opportunities,
)
from projections.list_queries.paging import PageRequest, RowPage, Sort, sorts
from projections.list_queries.plans import (
    PLAN_LIST_COLUMNS,
    PLAN_SORTS,
    PlanFilter,
    PlanItem,
    query_plans,
)

__all__ = [
    "CUSTOMER_SORTS",
    "FORECAST_SORTS",
    "FUZZY_SHARE",
    "FUZZY_SORT",
    "OPPORTUNITY_SORTS",
    "PLAN_LIST_COLUMNS",
    "PLAN_SORTS",
    "TOP",
    "CustomerFilter",
    "CustomerItem",
    "ForecastFilter",
    "ForecastItem",
    "OpportunityFilter",
    "OpportunityItem",
    "PageRequest",
    "PlanFilter",
    "PlanItem",
    "RowPage",
    "Sort",
    "customer_item",
    "forecast_item",
    "opportunity_item",
    "query_customers",
    "query_forecasts",
    "query_opportunities",
    "query_plans",
    "sorts",
]
