"""Rebuilds without downtime (PostgreSQL): a new version of the projections' tables is
filled beside the live one and switched in once caught up.

The new version lives in a schema of its own (``REBUILD_SCHEMA``): a runner whose
connections have only that schema on their ``search_path`` (so that no statement of
it can reach a live table) creates the same tables there and replays every event into
them, while queries and the live worker go on with
the tables in ``public``. Once it has caught up, one transaction locks the live
positions (waiting for the live worker's batch in flight), replays the last few events,
drops the old tables, moves the new ones into ``public`` (indexes and sequences move
with them) and takes their positions. A query waiting on the switch's lock then reads
the new table (PostgreSQL looks the name up again once it has the lock); none sees an
empty or half-filled table. The live worker notices its position moved and carries on
from there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from projections.base import Projection
from projections.runner import POSITIONS_TABLE, SCHEMAS_TABLE, ProjectionRunner
from services.database import Database, Transaction

log = logging.getLogger(__name__)

REBUILD_SCHEMA = "projection_rebuild"


def rebuild_beside(
    ledger: object, live: Database, projections: Sequence[Projection], batch_size: int = 2000
) -> int:
    """Rebuild ``projections`` beside their live tables and switch to them; the events
    replayed. Only one rebuild at a time (its schema is dropped and made anew)."""
    if live.dialect != "postgres":
        raise ValueError("a rebuild beside the live tables needs PostgreSQL")
    with live.transaction() as tx:
        tx.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
        tx.execute(f"CREATE SCHEMA {REBUILD_SCHEMA}")
    shadow = Database(live.settings, search_path=REBUILD_SCHEMA)
    try:
        runner = ProjectionRunner(ledger, shadow, projections, batch_size=batch_size)
        replayed = runner.catch_up()
        log.info("rebuilt %s beside the live tables; switching", runner.names)
        with live.transaction() as tx:
            _lock_live_positions(tx, runner.names)
            replayed += runner.catch_up()  # the live worker is held: nothing new to miss
            _switch(tx, projections, runner.positions())
    finally:
        shadow.close()
    with live.transaction() as tx:
        tx.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
    return replayed


def _lock_live_positions(tx: Transaction, names: Sequence[str]) -> None:
    tx.execute(
        f"SELECT name FROM {POSITIONS_TABLE} WHERE name = ANY(%s) FOR UPDATE", [list(names)]
    )


def _switch(tx: Transaction, projections: Sequence[Projection], positions: dict[str, int]) -> None:
    for projection in projections:
        for table in projection.tables:
            tx.execute(f"DROP TABLE IF EXISTS public.{table}")
            tx.execute(f"ALTER TABLE {REBUILD_SCHEMA}.{table} SET SCHEMA public")
        tx.execute(
            f"INSERT INTO public.{POSITIONS_TABLE} (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            [projection.name, positions[projection.name]],
        )
        tx.execute(
            f"INSERT INTO public.{SCHEMAS_TABLE} (name, fingerprint) "
            f"SELECT name, fingerprint FROM {REBUILD_SCHEMA}.{SCHEMAS_TABLE} WHERE name = %s "
            "ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint",
            [projection.name],
        )
