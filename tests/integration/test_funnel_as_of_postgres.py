"""The funnel as of a moment equals the fold of the events, on PostgreSQL too (its
``COPY`` appends, ``NUMERIC`` sums and text collation)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from projections.funnel import FunnelFilter
from services.database import Database
from services.settings import Settings
from tests.unit.test_funnel_as_of import as_of_cases, check_as_of_equals_fold

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_settings: Settings) -> Iterator[Database]:
    db = Database(postgres_settings)
    yield db
    db.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@as_of_cases
def test_the_funnel_as_of_any_moment_equals_the_fold_on_postgres(
    database: Database,
    steps: list[tuple[int, str, int, int]],
    cuts: list[int],
    moments: list[int],
    selection: FunnelFilter,
) -> None:
    check_as_of_equals_fold(database, steps, cuts, moments, selection)
