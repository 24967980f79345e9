"""What a person holds (open deals, customers), from the monitoring read model: the list
a departure or a bulk reassignment moves to a successor."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from projections.base import in_clause
from services.database import Database


@dataclass(frozen=True)
class Holdings:
    """A person's open deals and customers, by id."""

    deal_ids: list[str]
    customer_ids: list[str]


def holdings_of(database: Database, person_id: str) -> Holdings:
    """``person_id``'s open deals and customers, as the monitoring projection knows them."""
    with database.transaction() as tx:
        deals = tx.execute(
            "SELECT opportunity_id FROM monitoring_deals WHERE owner_id = %s AND status = 'open' "
            "ORDER BY opportunity_id",
            [person_id],
        )
        customers = tx.execute(
            "SELECT customer_id FROM monitoring_customers WHERE owner_id = %s ORDER BY customer_id",
            [person_id],
        )
    return Holdings(
        [row["opportunity_id"] for row in deals], [row["customer_id"] for row in customers]
    )


def held_by(database: Database, owners: Collection[str]) -> list[dict[str, str]]:
    """Open deals and customers held by any of ``owners`` (e.g. people who have left)."""
    names = sorted(owners)
    with database.transaction() as tx:
        deals = tx.execute(
            "SELECT opportunity_id AS id, title AS label, owner_id FROM monitoring_deals "
            f"WHERE status = 'open' AND owner_id {in_clause(names)} ORDER BY owner_id, id",
            names,
        )
        customers = tx.execute(
            "SELECT customer_id AS id, name AS label, owner_id FROM monitoring_customers "
            f"WHERE owner_id {in_clause(names)} ORDER BY owner_id, id",
            names,
        )
    return [{**row, "kind": "opportunity"} for row in deals] + [
        {**row, "kind": "customer"} for row in customers
    ]
