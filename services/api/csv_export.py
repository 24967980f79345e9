"""Lists and reports as CSV (``Accept: text/csv`` or ``?format=csv``), streamed row by
row; every export is recorded as an ``ExportRecorded`` event with who and what."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from commands.ledger import SalesLedger
from services.exports import record_export

CSV_MEDIA_TYPE = "text/csv"
EXPORT_PAGE_SIZE = 500
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Format = Annotated[
    Literal["json", "csv"] | None,
    Query(description="`csv` for the whole list (or report) as CSV; also `Accept: text/csv`"),
]
CSV_CONTENT: dict[str, Any] = {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}
"""The OpenAPI content of a CSV answer (added to the 200 of every route that offers it)."""


def wants_csv(request: Request, format: str | None) -> bool:
    """``?format=csv``, or ``Accept`` preferring CSV (a ``format`` given wins)."""
    if format is not None:
        return format == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == CSV_MEDIA_TYPE for part in accept.split(","))


def cell(value: Any) -> str:
    """A JSON value as a CSV cell; text that a spreadsheet would run as a formula is
    prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The header line, then one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: list[str]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(columns)
    for row in rows:
        yield line([cell(row.get(column)) for column in columns])


def csv_response(
    ledger: SalesLedger,
    actor: str,
    request: Request,
    columns: list[str],
    rows: Iterable[dict[str, Any]],
) -> StreamingResponse:
    """Record the export, then stream ``rows`` (dicts of JSON values) as CSV."""
    name = request.url.path.strip("/").replace("/", "-") or "export"
    record_export(
        ledger,
        actor,
        f"{request.method} {request.url.path} (csv)",
        {**request.path_params, **dict(request.query_params)},
    )
    return StreamingResponse(
        csv_lines(columns, rows),
        media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def every_page(
    fetch: Callable[[Any, int], tuple[list[BaseModel], Any]], state: Any
) -> Iterator[dict[str, Any]]:
    """Every row from ``state`` on, one read-model page at a time."""
    while True:
        items, state = fetch(state, EXPORT_PAGE_SIZE)
        for item in items:
            yield item.model_dump(mode="json")
        if state is None:
            return


def report_rows(report: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """A report as rows: its longest list of records (each record flattened one level,
    ``targets.revenue``), or the report itself as one row."""
    data = report if isinstance(report, list) else report.model_dump(mode="json")
    if isinstance(data, list):
        records: list[Any] = [
            r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in data
        ]
    else:
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        records = max(lists, key=len) if lists else [data]
    rows = [_flattened(record) for record in records]
    columns = list(dict.fromkeys(column for row in rows for column in row))
    return columns, rows


def _flattened(record: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            for inner, inner_value in value.items():
                flat[f"{key}.{inner}"] = inner_value
        else:
            flat[key] = value
    return flat


def report_response(
    request: Request, ledger: SalesLedger, actor: str, format: str | None, report: Any
) -> Any:
    """``report`` as it is, or (CSV asked for) as CSV rows (``report_rows``)."""
    if not wants_csv(request, format):
        return report
    return csv_response(ledger, actor, request, *report_rows(report))
