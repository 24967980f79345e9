"""The lists a user browses and searches: every opportunity, customer and forecast, one
row each with the columns the list filters and sorts on.

Tables:
- ``list_opportunities``: owner, customer, title, product, region, amount, expected
  close, stage, status, high value, when it was last worked (``idle_since``), version.
- ``list_opportunity_team``: who is on each deal's sales team.
- ``list_customers``: owner, class, region, and the search keys, normalised as the
  uniqueness check normalises them (``aggregates.customer.uniqueness_keys``); the phone
  key is also kept reversed, so that a number ending in the digits asked for is found
  through an index.
- ``list_customer_grams``: the trigrams of every customer's normalised name, for fuzzy
  search.
- ``list_forecasts``: each person's forecast per period: status and current total.

Modules:
- ``projection.py``: the tables and how a batch of events changes them;
- ``rows.py``: the columns, the row a new record starts as, and each deal event's change;
- ``search.py``: name trigrams and the keys a search text is compared with.
"""

from __future__ import annotations

from projections.listings.projection import ListingProjection
from projections.listings.rows import (
    CUSTOMER_COLUMNS,
    ERASED_CUSTOMER_COLUMNS,
    FORECAST_COLUMNS,
    OPPORTUNITY_COLUMNS,
)
from projections.listings.search import (
    GRAM_SIZE,
    customer_search_keys,
    name_grams,
    phone_suffixes,
)

__all__ = [
    "CUSTOMER_COLUMNS",
    "ERASED_CUSTOMER_COLUMNS",
    "FORECAST_COLUMNS",
    "GRAM_SIZE",
    "OPPORTUNITY_COLUMNS",
    "ListingProjection",
    "customer_search_keys",
    "name_grams",
    "phone_suffixes",
]
