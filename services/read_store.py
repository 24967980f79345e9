"""Where the projections keep their rows and positions.

On PostgreSQL: the ledger's own database. On SQLite: a sibling file
(``salesledger.db`` → ``salesledger.projections.db``). SQLite allows one writer per
file and the event store opens its write transactions with a deferred ``BEGIN``, so
a projection writing into the same file would make concurrent commands fail with
"database is locked". Positions and rows still commit together in the sibling file.
"""

from __future__ import annotations

from pathlib import Path

from services.database import Database
from services.settings import Settings


def read_store_settings(settings: Settings) -> Settings:
    if settings.store != "sqlite" or settings.sqlite_path.startswith(":memory:"):
        return settings
    path = Path(settings.sqlite_path)
    sibling = path.with_name(f"{path.stem}.projections{path.suffix or '.db'}")
    return settings.model_copy(update={"sqlite_path": str(sibling)})


def open_read_store(settings: Settings) -> Database:
    """The database the projections write to and the queries read from."""
    return Database(read_store_settings(settings))
