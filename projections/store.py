"""The port the read models are written against: transactions on a SQL read store.

Projections and their queries need only this much of a database: a dialect name (the
two supported dialects differ in a few statements), atomic transactions that execute
``%s``-placeholder SQL and return rows as dicts, bulk appends, and a way to wait for
new events. ``services/database.py`` implements it on PostgreSQL and SQLite; unit
tests may pass any object of this shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = dict[str, Any]


class Transaction(Protocol):
    """One atomic unit of work on the read store."""

    dialect: str
    temporary_tables: set[str]
    """Temporary tables this transaction's session has (created in committed transactions)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Append ``rows`` (values in ``columns`` order) to ``table``: ``COPY`` on
        PostgreSQL, ``executemany`` on SQLite. Values must be SQL scalars; on SQLite
        ``Decimal`` and ``date`` are stored as text."""
        ...

    def copy_text(self, table: str, columns: Sequence[str], text: str) -> None:
        """Append rows given in ``COPY`` text format (``copy_escaped`` values separated by
        tabs, one row per line), for callers that format simple rows faster at once."""
        ...


class ReadStore(Protocol):
    """Where the projections keep their rows and positions, and queries read them."""

    @property
    def dialect(self) -> str:
        """``postgres`` or ``sqlite``."""
        ...

    @property
    def connections_at_most(self) -> int:
        """How many transactions can be open at once."""
        ...

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Everything inside commits together or not at all."""
        ...

    def wait_for_notify(self, channel: str, timeout: float) -> None:
        """Block until a notification on ``channel`` or ``timeout`` seconds pass."""
        ...

    def is_transient(self, error: BaseException) -> bool:
        """True for a failure of the store itself (away, a dropped connection, a
        deadlock), worth retrying as it is; False for one the data caused."""
        ...

    def close(self) -> None: ...


def copy_escaped(text: str) -> str:
    """``text`` as a value in PostgreSQL's ``COPY`` text format."""
    for special, escaped in _COPY_ESCAPES:
        text = text.replace(special, escaped)
    return text


def copy_unescaped(value: str) -> str | None:
    """A value of ``COPY`` text format as the text it stands for (``\\N``: None)."""
    if value == "\\N":
        return None
    if "\\" not in value:
        return value
    return re.sub(r"\\(.)", lambda m: _COPY_UNESCAPES.get(m[1], m[1]), value)


_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
_COPY_UNESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
