"""Lists of opportunities, customers, plans and forecasts: filtered, sorted, paged by
cursor, as JSON or CSV, each showing only what the caller may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request, Response

from projections.base import iso_timestamp
from projections.list_queries import (
    CUSTOMER_SORTS,
    FORECAST_SORTS,
    FUZZY_SORT,
    OPPORTUNITY_SORTS,
    PLAN_SORTS,
    CustomerFilter,
    CustomerItem,
    ForecastFilter,
    ForecastItem,
    OpportunityFilter,
    OpportunityItem,
    PageRequest,
    PlanFilter,
    PlanItem,
    customer_item,
    forecast_item,
    opportunity_item,
    query_customers,
    query_forecasts,
    query_opportunities,
    query_plans,
)
from services.api.csv_export import Format
from services.api.dependencies import ContextDep, fresh
from services.api.listing import day_param, list_response, person_param, visible_to
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, keyset_of
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.moments import MOMENT_FORMATS, Bound

router = LedgerRouter()

Text = Annotated[str | None, Query(min_length=1, max_length=200)]
Person = Annotated[
    str | None, Query(min_length=1, max_length=100, description="a person id or `me`")
]
Day = Annotated[str | None, Query(max_length=40, description=f"{MOMENT_FORMATS}; its date counts")]
Amount = Annotated[Decimal | None, Query(ge=0, max_digits=20, decimal_places=2)]
DEFAULT_STALE_DAYS = 30


@router.get(
    "/opportunities",
    response_model=Page[OpportunityItem],
    tags=["opportunities"],
    dependencies=[Depends(fresh("lists"))],
)
def list_opportunities(
    request: Request,
    response: Response,
    context: ContextDep,
    actor: CurrentActor,
    owner: Person = None,
    team_member: Person = None,
    customer: Text = None,
    stage: Annotated[int | None, Query(ge=1, le=8)] = None,
    status: Literal["open", "won", "lost", "nurturing"] | None = None,
    product: Text = None,
    region: Text = None,
    close_from: Day = None,
    close_to: Day = None,
    amount_min: Amount = None,
    amount_max: Amount = None,
    high_value: bool | None = None,
    stale: Annotated[
        bool | None,
        Query(description="open deals neither worked nor moved for `stale_days` (false: the rest)"),
    ] = None,
    stale_days: Annotated[int, Query(ge=1, le=3650)] = DEFAULT_STALE_DAYS,
    sort: Literal[tuple(OPPORTUNITY_SORTS)] = "expected_close",  # type: ignore[valid-type]
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """The deals you may see (your own and your team's; everything for auditors)."""
    selection = OpportunityFilter(
        owner_id=person_param(owner, actor),
        team_member=person_param(team_member, actor),
        customer_id=customer,
        stage=stage,
        status=status,
        product=product,
        region=region,
        close_from=day_param(context, close_from, "close_from", Bound.START),
        close_to=day_param(context, close_to, "close_to", Bound.END),
        amount_min=amount_min,
        amount_max=amount_max,
        high_value=high_value,
        stale=stale,
        idle_before=iso_timestamp(datetime.now(UTC) - timedelta(days=stale_days)),
    )
    visible = visible_to(context, actor)

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        page = PageRequest(OPPORTUNITY_SORTS[sort], keyset_of(state), limit)
        rows = query_opportunities(context.database, selection, page, visible)
        return [opportunity_item(row) for row in rows.rows], rows.next_after

    return list_response(
        request, response, context, actor, name="opportunities", sort=sort, cursor=cursor,
        limit=limit, format=format, item=OpportunityItem, fetch=fetch,
    )  # fmt: skip


@router.get(
    "/customers",
    response_model=Page[CustomerItem],
    tags=["customers"],
    dependencies=[Depends(fresh("lists"))],
)
def list_customers(
    request: Request,
    response: Response,
    context: ContextDep,
    actor: CurrentActor,
    owner: Person = None,
    classification: Literal["A", "B", "C"] | None = None,
    region: Text = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="search: the start of the name, tax id, e-mail or phone number, or "
            "the end of the phone number, each normalised as the uniqueness check does "
            "(`+86 21-5555 0100` finds `0086 21 55550100`)",
        ),
    ] = None,
    fuzzy: Annotated[
        bool, Query(description="rank names by shared trigrams (typos), best match first")
    ] = False,
    sort: Literal[tuple(CUSTOMER_SORTS)] = "name",  # type: ignore[valid-type]
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """The customers you may see (yours, your team's and unowned ones; all for auditors)."""
    selection = CustomerFilter(
        owner_id=person_param(owner, actor),
        classification=classification,
        region=region,
        search=q,
        fuzzy=fuzzy,
    )
    order = FUZZY_SORT if fuzzy and q else CUSTOMER_SORTS[sort]
    visible = visible_to(context, actor)

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        page = PageRequest(order, keyset_of(state), limit)
        rows = query_customers(context.database, selection, page, visible)
        return [customer_item(row) for row in rows.rows], rows.next_after

    return list_response(
        request, response, context, actor, name="customers",
        sort="fuzzy" if order is FUZZY_SORT else sort, cursor=cursor, limit=limit,
        format=format, item=CustomerItem, fetch=fetch,
    )  # fmt: skip


@router.get(
    "/plans",
    response_model=Page[PlanItem],
    tags=["plans"],
    dependencies=[Depends(fresh("plans"))],
)
def list_plans(
    request: Request,
    response: Response,
    context: ContextDep,
    actor: CurrentActor,
    period: Text = None,
    status: Literal["draft", "approved", "revised"] | None = None,
    sort: Literal[tuple(PLAN_SORTS)] = "drafted_at",  # type: ignore[valid-type]
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """Every sales plan (any member may read plans)."""
    selection = PlanFilter(period=period, status=status)
    nothing = visible_to(context, actor) == set()

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        if nothing:
            return [], None
        page = PageRequest(PLAN_SORTS[sort], keyset_of(state), limit)
        rows = query_plans(context.database, selection, page)
        return [PlanItem(**row) for row in rows.rows], rows.next_after

    return list_response(
        request, response, context, actor, name="plans", sort=sort, cursor=cursor,
        limit=limit, format=format, item=PlanItem, fetch=fetch,
    )  # fmt: skip


@router.get(
    "/forecasts",
    response_model=Page[ForecastItem],
    tags=["forecasts"],
    dependencies=[Depends(fresh("lists"))],
)
def list_forecasts(
    request: Request,
    response: Response,
    context: ContextDep,
    actor: CurrentActor,
    person: Person = None,
    period: Text = None,
    status: Literal["open", "submitted", "revised"] | None = None,
    sort: Literal[tuple(FORECAST_SORTS)] = "period",  # type: ignore[valid-type]
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: Format = None,
) -> Any:
    """The forecasts you may see (yours and your team's; all for auditors)."""
    selection = ForecastFilter(person_id=person_param(person, actor), period=period, status=status)
    visible = visible_to(context, actor)

    def fetch(state: Any, limit: int) -> tuple[list[Any], Any]:
        page = PageRequest(FORECAST_SORTS[sort], keyset_of(state), limit)
        rows = query_forecasts(context.database, selection, page, visible)
        return [forecast_item(row) for row in rows.rows], rows.next_after

    return list_response(
        request, response, context, actor, name="forecasts", sort=sort, cursor=cursor,
        limit=limit, format=format, item=ForecastItem, fetch=fetch,
    )  # fmt: skip
