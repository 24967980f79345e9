"""Process monitoring's queries: stale and slipped deals, activity per person and week,
customers without an owner, and ownership transfers."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from projections.base import (
    as_decimal,
    in_clause,
    iso_timestamp,
)
from projections.monitoring.projection import DEAL_COLUMNS, TRANSFER_COLUMNS
from projections.store import ReadStore


class WatchedDeal(BaseModel):
    """An open deal that needs attention."""

    opportunity_id: str
    customer_id: str
    owner_id: str = Field(examples=["alice"])
    title: str = Field(examples=["Line 3 automation"])
    stage: int = Field(examples=[4])
    expected_close: date = Field(examples=["2026-03-31"])
    last_stage_change_at: str
    last_activity_at: str | None
    amount: Decimal = Field(examples=["275000"])
    customer_name: str | None = Field(examples=["Bright Machinery"])
    owner_name: str | None = Field(default=None, examples=["Alice Chen"])
    days_idle: int = Field(description="days since the last activity or stage change")
    days_overdue: int = Field(description="days since the expected close date (0 if not yet)")


class WatchedDealPage(BaseModel):
    """A page of deals needing attention, most idle first."""

    items: list[WatchedDeal]
    total: int
    next_offset: int | None


def _owner_condition(
    owner_ids: Collection[str] | None, column: str = "d.owner_id"
) -> tuple[str, list[Any]]:
    if owner_ids is None:
        return "", []
    owners = sorted(owner_ids)
    return f" AND {column} {in_clause(owners)}", owners


def _deal_page(
    database: ReadStore,
    condition: str,
    params: list[Any],
    now: datetime,
    limit: int,
    offset: int,
) -> WatchedDealPage:
    idle_since = (
        "CASE WHEN d.last_activity_at IS NOT NULL AND d.last_activity_at > "
        "d.last_stage_change_at THEN d.last_activity_at ELSE d.last_stage_change_at END"
    )
    columns = ", ".join(f"d.{c}" for c in DEAL_COLUMNS)
    with database.transaction() as tx:
        total = tx.execute(
            f"SELECT COUNT(*) AS n FROM monitoring_deals d WHERE d.status = 'open'{condition}",
            params,
        )[0]["n"]
        rows = tx.execute(
            f"SELECT {columns}, c.name AS customer_name FROM monitoring_deals d "
            "LEFT JOIN monitoring_customers c ON c.customer_id = d.customer_id "
            f"WHERE d.status = 'open'{condition} ORDER BY {idle_since}, d.opportunity_id "
            "LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
    items = []
    for row in rows:
        idle_since_at = max(row["last_stage_change_at"], row["last_activity_at"] or "")
        overdue = (now.date() - date.fromisoformat(row["expected_close"])).days
        items.append(
            WatchedDeal(
                **{k: row[k] for k in DEAL_COLUMNS if k not in ("status", "amount")},
                amount=as_decimal(row["amount"]),
                customer_name=row["customer_name"],
                days_idle=(now - datetime.fromisoformat(idle_since_at)).days,
                days_overdue=max(0, overdue),
            )
        )
    return WatchedDealPage(
        items=items,
        total=int(total),
        next_offset=offset + limit if offset + limit < int(total) else None,
    )


def query_stale_deals(
    database: ReadStore,
    *,
    days: int,
    now: datetime | None = None,
    owner_ids: Collection[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> WatchedDealPage:
    """Open deals with neither activity nor a stage change for ``days`` days."""
    now = now or datetime.now(UTC)
    cutoff = iso_timestamp(now - timedelta(days=days))
    owners, owner_params = _owner_condition(owner_ids)
    condition = (
        " AND d.last_stage_change_at < %s "
        "AND (d.last_activity_at IS NULL OR d.last_activity_at < %s)" + owners
    )
    return _deal_page(database, condition, [cutoff, cutoff, *owner_params], now, limit, offset)


def query_slipped_deals(
    database: ReadStore,
    *,
    now: datetime | None = None,
    owner_ids: Collection[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> WatchedDealPage:
    """Open deals whose expected close date has passed (by ``now``'s date)."""
    now = now or datetime.now(UTC)
    today = now.date()
    owners, owner_params = _owner_condition(owner_ids)
    return _deal_page(
        database,
        f" AND d.expected_close < %s{owners}",
        [today.isoformat(), *owner_params],
        now,
        limit,
        offset,
    )


class ActivityCount(BaseModel):
    """How many activities a person logged in an ISO week, by kind."""

    person_id: str = Field(examples=["alice"])
    week: str = Field(examples=["2026-W14"])
    total: int = Field(examples=[9])
    by_kind: dict[str, int] = Field(examples=[{"visit": 4, "call": 5}])


def query_activity_counts(
    database: ReadStore,
    *,
    person_ids: Collection[str] | None = None,
    from_week: str | None = None,
    to_week: str | None = None,
) -> list[ActivityCount]:
    """Activities per person and ISO week (``2026-W14``), optionally within a week range."""
    condition, params = _owner_condition(person_ids, "person_id")
    if from_week is not None:
        condition += " AND week >= %s"
        params.append(from_week)
    if to_week is not None:
        condition += " AND week <= %s"
        params.append(to_week)
    with database.transaction() as tx:
        rows = tx.execute(
            "SELECT person_id, week, kind, count FROM monitoring_activity_counts "
            f"WHERE 1 = 1{condition} ORDER BY person_id, week, kind",
            params,
        )
    counts: dict[tuple[str, str], ActivityCount] = {}
    for row in rows:
        key = (row["person_id"], row["week"])
        entry = counts.setdefault(
            key, ActivityCount(person_id=key[0], week=key[1], total=0, by_kind={})
        )
        entry.by_kind[row["kind"]] = int(row["count"])
        entry.total += int(row["count"])
    return list(counts.values())


class UnownedCustomer(BaseModel):
    """A customer nobody is responsible for."""

    customer_id: str
    name: str = Field(examples=["Bright Machinery"])
    registered_at: str
    registered_by: str = Field(examples=["marketing"])


class UnownedCustomerPage(BaseModel):
    items: list[UnownedCustomer]
    total: int
    next_offset: int | None


def query_unowned_customers(
    database: ReadStore, *, limit: int = 100, offset: int = 0
) -> UnownedCustomerPage:
    """Customers without an account manager, oldest first."""
    with database.transaction() as tx:
        total = int(
            tx.execute("SELECT COUNT(*) AS n FROM monitoring_customers WHERE owner_id IS NULL")[0][
                "n"
            ]
        )
        rows = tx.execute(
            "SELECT customer_id, name, registered_at, registered_by FROM monitoring_customers "
            "WHERE owner_id IS NULL ORDER BY registered_at, customer_id LIMIT %s OFFSET %s",
            [limit, offset],
        )
    return UnownedCustomerPage(
        items=[UnownedCustomer(**row) for row in rows],
        total=total,
        next_offset=offset + limit if offset + limit < total else None,
    )


class OwnershipTransfer(BaseModel):
    """A customer or deal passed from one owner to another."""

    position: int
    aggregate_id: str
    aggregate_type: str = Field(examples=["customer"])
    from_owner: str | None = Field(examples=["alice"])
    to_owner: str = Field(examples=["bob"])
    actor: str = Field(examples=["carol"])
    recorded_at: str
    reason: str = Field(examples=["alice moved to the west region"])


class OwnershipTransferPage(BaseModel):
    items: list[OwnershipTransfer]
    next_after: int | None


def query_ownership_transfers(
    database: ReadStore,
    *,
    aggregate_id: str | None = None,
    person_id: str | None = None,
    people: Collection[str] | None = None,
    after: int = 0,
    limit: int = 100,
) -> OwnershipTransferPage:
    """Transfers in order; ``person_id`` matches the old owner, the new owner or the actor;
    ``people`` (if given) keeps those from or to one of them."""
    conditions: list[str] = ["position > %s"]
    params: list[Any] = [after]
    if aggregate_id is not None:
        conditions.append("aggregate_id = %s")
        params.append(aggregate_id)
    if person_id is not None:
        conditions.append("(from_owner = %s OR to_owner = %s OR actor = %s)")
        params.extend([person_id] * 3)
    if people is not None:
        names = sorted(people)
        conditions.append(f"(from_owner {in_clause(names)} OR to_owner {in_clause(names)})")
        params.extend([*names, *names])
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM monitoring_ownership_transfers "
            f"WHERE {' AND '.join(conditions)} ORDER BY position LIMIT %s",
            [*params, limit + 1],
        )
    items = [OwnershipTransfer(**row) for row in rows[:limit]]
    return OwnershipTransferPage(
        items=items, next_after=items[-1].position if len(rows) > limit else None
    )
