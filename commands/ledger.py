"""The application service: every command of the sales process, one area per module.

Each area's commands are a class of their own (``commands/organisation.py``,
``customers.py``, ``opportunities.py``, ``plans.py``, ``forecasts.py``, ``exports.py``),
all built on the one load → decide → save core in ``commands/application.py``;
``SalesLedger`` is all of them in one application.
"""

from __future__ import annotations

from commands.application import CommandResult, LedgerApplication
from commands.customers import CustomerCommands
from commands.exports import ExportCommands
from commands.forecasts import ForecastCommands
from commands.opportunities import OpportunityCommands
from commands.organisation import OrganisationCommands
from commands.plans import PlanCommands

__all__ = ["CommandResult", "LedgerApplication", "SalesLedger"]


class SalesLedger(
    OrganisationCommands,
    CustomerCommands,
    OpportunityCommands,
    PlanCommands,
    ForecastCommands,
    ExportCommands,
):
    """Every command of the sales process; each one is a load → decide → save."""

    name = "SalesLedger"
