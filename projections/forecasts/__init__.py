"""Forecasts: every submission, adjustment and quota, rolled up the hierarchy, against
actuals as known at any moment.

- ``projection.py``: the tables, one row per event;
- ``report.py``: the report of a period as believed at any moment.
"""

from __future__ import annotations

from projections.forecasts.projection import ForecastProjection
from projections.forecasts.report import (
    ForecastReport,
    ForecastRevisionView,
    PersonForecast,
    query_forecast_report,
)

__all__ = [
    "ForecastProjection",
    "ForecastReport",
    "ForecastRevisionView",
    "PersonForecast",
    "query_forecast_report",
]
