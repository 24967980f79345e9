"""Import from another CRM over HTTP: one CSV file per request (see docs/import.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.api.dependencies import LedgerDep
from services.api.errors import problem
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.importing.crm import CrmImport

router = LedgerRouter(tags=["import"])


class ImportProblem(BaseModel):
    """A row that cannot be imported: its line, the column, why."""

    line: int = Field(examples=[17])
    field: str = Field(examples=["Amount"])
    reason: str = Field(examples=["not a number: 'ten'"])


class ImportResult(BaseModel):
    """What the import did (or, in a dry run, would do)."""

    kind: str
    file: str
    rows: int
    imported: int = Field(description="rows recorded now (in a dry run: that would be)")
    already_imported: int = Field(description="rows of an earlier import of the same data")
    events: int
    written: bool
    problems: list[ImportProblem]


@router.post(
    "/imports/{kind}",
    response_model=ImportResult,
    responses={422: {"description": "rows with problems, nothing written: a problem whose "
                     "members are the import report (`problems`: line, field, reason)"}},
)
def post_import(
    kind: Literal["customers", "opportunities", "history"],
    ledger: LedgerDep,
    actor: CurrentActor,
    data: Annotated[bytes, Body(media_type="text/csv", description="the CSV file")],
    dry_run: Annotated[bool, Query(description="check every row, write nothing")] = False,
    file_name: Annotated[str, Query(max_length=200, description="named in the audit log")] = (
        "upload.csv"
    ),
) -> ImportResult | JSONResponse:
    """Import one CSV file (admins): all of it, or nothing with a report of every problem."""
    report = CrmImport(ledger, actor, progress=False).run_data(
        kind, file_name, data, dry_run=dry_run
    )
    result = ImportResult(
        kind=report.kind,
        file=report.file,
        rows=report.rows,
        imported=report.imported,
        already_imported=report.already_imported,
        events=report.events,
        written=report.written,
        problems=[
            ImportProblem(line=p.line, field=p.field, reason=p.reason) for p in report.problems
        ],
    )
    if report.problems and not dry_run:
        return problem(
            422,
            "import_refused",
            f"{len(report.problems)} problem(s) in {report.file}: nothing was imported",
            **result.model_dump(mode="json"),
        )
    return result
