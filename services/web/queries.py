"""The few reads the dashboard makes beyond the projections' own query functions: deal
cards for the board and the home page, a customer's deals, the plans, filter choices,
and the version that tells a page it is out of date."""

from __future__ import annotations

from collections.abc import Collection

from commands.ledger import SalesLedger
from projections.base import in_clause
from projections.funnel import FunnelFilter
from projections.runner import POSITIONS_TABLE
from services.database import Database, Row

CARD_COLUMNS = (
    "opportunity_id, customer_id, owner_id, title, amount, expected_close, stage, "
    "qualification, stage_entered_at"
)


def board_cards(
    database: Database, selection: FunnelFilter, per_stage: int = 25
) -> dict[int, list[Row]]:
    """The largest open deals of each sales stage (not nurturing) that ``selection`` keeps."""
    conditions, params = selection.sql()
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT * FROM (SELECT {CARD_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY stage "
            "ORDER BY amount DESC, opportunity_id) AS rank FROM funnel_opportunities "
            f"WHERE status = 'open' AND qualification <> 'nurturing'{conditions}) AS ranked "
            "WHERE rank <= %s ORDER BY stage, rank",
            [*params, per_stage],
        )
    cards: dict[int, list[Row]] = {}
    for row in rows:
        cards.setdefault(int(row["stage"]), []).append(row)
    return cards


def open_deals_of(database: Database, owner_id: str, limit: int = 200) -> list[Row]:
    """A person's open deals, soonest expected close first."""
    with database.transaction() as tx:
        return tx.execute(
            f"SELECT {CARD_COLUMNS} FROM funnel_opportunities WHERE owner_id = %s "
            "AND status = 'open' ORDER BY expected_close, opportunity_id LIMIT %s",
            [owner_id, limit],
        )


def deals_of_customer(
    database: Database, customer_id: str, owners: Collection[str] | None
) -> list[Row]:
    """The customer's deals (among those of ``owners``, if given), newest first."""
    condition, params = "", [customer_id]
    if owners is not None:
        ordered = sorted(owners)
        condition = f" AND owner_id {in_clause(ordered)}"
        params.extend(ordered)
    with database.transaction() as tx:
        return tx.execute(
            f"SELECT {CARD_COLUMNS}, status, won_amount FROM funnel_opportunities "
            f"WHERE customer_id = %s{condition} ORDER BY opened_at DESC",
            params,
        )


def plans(database: Database) -> list[Row]:
    with database.transaction() as tx:
        return tx.execute("SELECT plan_id, name, period, status FROM plans ORDER BY period, name")


def filter_choices(database: Database) -> dict[str, list[str]]:
    """The regions and products deals have, for the board's filters."""
    with database.transaction() as tx:
        return {
            column: [
                str(r["value"])
                for r in tx.execute(
                    f"SELECT DISTINCT {column} AS value FROM funnel_dimension_totals "
                    f"ORDER BY {column}"
                )
            ]
            for column in ("region", "product")
        }


def data_version(ledger: SalesLedger, database: Database) -> str:
    """Changes whenever an event is recorded or a projection applies one."""
    recorded = ledger.store.max_committed_notification_id() or 0
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT MIN(position) AS low, MAX(position) AS high FROM {POSITIONS_TABLE}"
        )
    low, high = (rows[0]["low"] or 0, rows[0]["high"] or 0) if rows else (0, 0)
    return f"{recorded}-{low}-{high}"


def forecast_periods(database: Database) -> list[str]:
    """The periods anyone submitted a forecast for, latest first."""
    with database.transaction() as tx:
        rows = tx.execute("SELECT DISTINCT period FROM forecast_submissions ORDER BY period DESC")
    return [str(r["period"]) for r in rows]


def amounts_of(database: Database, opportunity_ids: Collection[str]) -> dict[str, object]:
    """The current amount of each of these deals."""
    return _column_by_id(
        database, "funnel_opportunities", "opportunity_id", "amount", opportunity_ids
    )


def customer_names(database: Database, customer_ids: Collection[str]) -> dict[str, str]:
    """The registered names of these customers."""
    names = _column_by_id(database, "monitoring_customers", "customer_id", "name", customer_ids)
    return {key: str(name) for key, name in names.items()}


def deal_titles(database: Database, opportunity_ids: Collection[str]) -> dict[str, str]:
    """The current title of each of these deals."""
    titles = _column_by_id(
        database, "funnel_opportunities", "opportunity_id", "title", opportunity_ids
    )
    return {key: str(title) for key, title in titles.items()}


def _column_by_id(
    database: Database, table: str, id_column: str, column: str, keys: Collection[str]
) -> dict[str, object]:
    """``column`` of the rows of ``table`` whose ``id_column`` is one of ``keys``."""
    ids = sorted(set(keys))
    if not ids:
        return {}
    with database.transaction() as tx:
        rows = tx.execute(
            f"SELECT {id_column}, {column} FROM {table} WHERE {id_column} {in_clause(ids)}",
            ids,
        )
    return {str(r[id_column]): r[column] for r in rows}
