"""Process monitoring: stale and slipped deals, activity per person and week, customers
without an owner, and every ownership transfer of customers and deals.

- ``projection.py``: the tables and how events change them;
- ``queries.py``: the lists and counts the API and the dashboard show.
"""

from __future__ import annotations

from projections.monitoring.projection import MonitoringProjection
from projections.monitoring.queries import (
    ActivityCount,
    OwnershipTransfer,
    OwnershipTransferPage,
    UnownedCustomer,
    UnownedCustomerPage,
    WatchedDeal,
    WatchedDealPage,
    query_activity_counts,
    query_ownership_transfers,
    query_slipped_deals,
    query_stale_deals,
    query_unowned_customers,
)

__all__ = [
    "ActivityCount",
    "MonitoringProjection",
    "OwnershipTransfer",
    "OwnershipTransferPage",
    "UnownedCustomer",
    "UnownedCustomerPage",
    "WatchedDeal",
    "WatchedDealPage",
    "query_activity_counts",
    "query_ownership_transfers",
    "query_slipped_deals",
    "query_stale_deals",
    "query_unowned_customers",
]
