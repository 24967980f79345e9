"""Import from another CRM: CSV files of customers, opportunities and opportunity history.

Each row becomes the events the ledger's own decisions make (the aggregates' rules
apply, customers' uniqueness too), stamped with the row's original time (``CreatedDate``)
so that the funnel, conversion and as-of answers cover the imported past. Every row is
claimed (``import:<kind>:…``, the claim's value saying file and line), so a second import
of the same file changes nothing; the file's events, its claims and one
``ImportRecorded`` event (who imported which file, when, which lines made which
aggregate) are appended in one transaction: all of the file or none of it. Columns:
docs/import.md.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from tqdm import tqdm

from aggregates.audit_log import AuditLog, audit_log_id
from aggregates.customer import Customer, uniqueness_keys
from aggregates.errors import DomainError, InvalidFieldError, NotAllowedError, NotFoundError
from aggregates.evaluation import QUALIFICATION_CRITERIA
from aggregates.opportunity import Opportunity, Qualification, Status
from aggregates.organisation import Organisation, Role
from commands.ledger import SalesLedger
from events.base import recorded_at
from events.limits import EventFieldError, check_event

COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("Id", "Name", "Source", "TaxId", "Phone", "Email", "OwnerId", "CreatedDate"),
    "opportunities": (
        "Id", "AccountId", "OwnerId", "Name", "LeadSource", "Amount", "CloseDate",
        "Product", "Region", "CreatedDate",
    ),
    "history": (
        "OpportunityId", "CreatedDate", "StageName", "Amount", "CloseDate", "OwnerId",
        "Qualification", "LostReason", "Competitor",
    ),
}  # fmt: skip
"""The columns of each kind of file, in the order the export writes them."""
OPTIONAL = {"TaxId", "Phone", "Email", "OwnerId", "Qualification", "LostReason", "Competitor"}
WON, LOST = "Closed Won", "Closed Lost"
CLAIM_CHUNK = 1000
PROVENANCE_CHUNK = 2000
"""Aggregates per ``ImportRecorded`` event (its lines stay well under the event size limit)."""


class RowError(Exception):
    """A row's value that cannot be imported: which column, and why."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


@dataclass(frozen=True)
class RowProblem:
    line: int
    field: str
    reason: str


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do), row by row where it went wrong."""

    kind: str
    file: str
    rows: int = 0
    imported: int = 0
    already_imported: int = 0
    events: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    written: bool = False
    lines: dict[str, list[int]] = field(default_factory=dict)


def imported_id(kind: str, external_id: str) -> UUID:
    """The ledger id of a record imported from another CRM: the same on every import."""
    return uuid5(NAMESPACE_URL, f"salesledger:import:{kind}:{external_id.strip()}")


class CrmImport:
    """Imports the three kinds of file for ``actor`` (an admin) into ``ledger``."""

    def __init__(self, ledger: SalesLedger, actor: str, *, progress: bool = True) -> None:
        self.ledger = ledger
        self.actor = actor
        self.progress = progress
        self.org: Organisation = ledger.organisation()
        self.known: dict[UUID, Aggregate] = {}
        """Records this importer made (written, or in a dry run not): later files refer to
        them without reading them again (a record changed meanwhile by someone else makes
        the later file's append collide, and it is refused whole)."""
        if not self.org.has_role(actor, Role.ADMIN):
            raise NotAllowedError("only an admin imports from another CRM")

    def run(self, kind: str, path: Path, *, dry_run: bool = False) -> ImportReport:
        """Import one file: all of it or (with problems, or ``dry_run``) nothing."""
        return self.run_data(kind, path.name, path.read_bytes(), dry_run=dry_run)

    def run_data(self, kind: str, name: str, text: bytes, *, dry_run: bool = False) -> ImportReport:
        """Import the CSV ``text`` of a file called ``name`` (see ``run``)."""
        if kind not in COLUMNS:
            raise RowError("kind", f"must be one of {', '.join(COLUMNS)}")
        translate = {
            "customers": self._customer,
            "opportunities": self._opportunity,
            "history": self._history_row,
        }[kind]
        report = ImportReport(kind, name)
        try:
            decoded = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            report.problems.append(RowProblem(1, "file", "not UTF-8 text"))
            return report
        rows = list(_rows(decoded, kind, report))
        run = _Run(self, kind, name)
        keys = [run.claim_key(row) for _, row in rows]
        claimed = self._claimed(keys)
        if kind == "customers":
            run.taken = self._taken(
                [k for _, row in rows for k, _ in _customer_claims(row, self.ledger)]
            )
        bar = tqdm(rows, desc=f"importing {name}", unit="row", disable=not self.progress)
        for (line, row), key in zip(bar, keys, strict=True):
            report.rows += 1
            if key in claimed:
                report.already_imported += 1
                continue
            try:
                touched = translate(run, line, row)
            except RowError as error:
                report.problems.append(RowProblem(line, error.column, error.reason))
                continue
            except DomainError as error:
                report.problems.append(RowProblem(line, run.rule_column, str(error)))
                continue
            try:
                run.check_new_events(touched)
            except EventFieldError as error:
                report.problems.append(RowProblem(line, error.field, error.problem))
                continue
            report.imported += 1
            report.lines.setdefault(str(touched), []).append(line)
            run.claims.append((key, f"{name}:{line}:{touched}"))
        if report.problems or dry_run or not report.imported:
            report.events = sum(len(a.pending_events) for a in run.aggregates.values())
            if dry_run:  # a refused real run's records exist nowhere: later files may not use them
                self.known.update(run.aggregates)
            return report
        report.events = self._write(run, report, hashlib.sha256(text).hexdigest())
        report.written = True
        self.known.update(run.aggregates)
        return report

    def _claimed(self, keys: Sequence[str]) -> set[str]:
        return set(self._taken(keys))

    def _taken(self, keys: Sequence[str]) -> dict[str, str]:
        """The claims among ``keys`` already in the store, and their values."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), CLAIM_CHUNK):
            found.update(self.ledger.store.select_claims(list(keys[start : start + CLAIM_CHUNK])))
        return found

    def _write(self, run: _Run, report: ImportReport, sha256: str) -> int:
        today = datetime.now(UTC).date()
        try:
            log = self.ledger.load(AuditLog, audit_log_id(self.actor, today))
        except NotFoundError:
            log = AuditLog.open(self.actor, today)
        aggregates = sorted(report.lines)
        for start in range(0, len(aggregates), PROVENANCE_CHUNK):
            chunk = {a: report.lines[a] for a in aggregates[start : start + PROVENANCE_CHUNK]}
            log.record_import(report.file, report.kind, sha256, report.rows, chunk)
        events = [e for a in [*run.aggregates.values(), log] for e in a.collect_events()]
        try:
            stored = [self.ledger.mapper.to_stored_event(event) for event in events]
            self.ledger.recorder.insert_events(stored, claims=run.claims)
        except InvalidFieldError as error:
            raise DomainError(f"{report.file}: nothing imported: {error}") from None
        except IntegrityError:
            raise DomainError(
                f"{report.file}: a record or a uniqueness claim was written meanwhile; "
                "nothing of this file was imported, run it again"
            ) from None
        return len(events)

    # One row each.

    def _customer(self, run: _Run, line: int, row: dict[str, str]) -> UUID:
        run.rule_column = "Name"
        name, tax_id, phone, email = (row[c] or None for c in ("Name", "TaxId", "Phone", "Email"))
        claims = _customer_claims(row, self.ledger)
        for key, kind in claims:
            other = run.taken.get(key) or run.unique.get(key)
            if other is not None:
                raise RowError(_CUSTOMER_COLUMNS[kind], f"the same customer as {other} ({kind})")
        customer_id = imported_id("customer", _required(row, "Id"))
        with recorded_at(_moment(row, "CreatedDate")):
            customer = Customer.register(
                name=name or "",
                source=_required(row, "Source"),
                tax_id=tax_id,
                phone=phone,
                email=email,
                owner_id=self._person(row, "OwnerId") if row["OwnerId"] else None,
                profile={"imported_id": row["Id"]},
                actor=self.actor,
                org=self.org,
                customer_id=customer_id,
            )
        for key, _ in claims:
            run.unique[key] = str(customer_id)
            run.claims.append((key, str(customer_id)))
        run.aggregates[customer_id] = customer
        return customer_id

    def _opportunity(self, run: _Run, line: int, row: dict[str, str]) -> UUID:
        run.rule_column = "OwnerId"
        customer_id = imported_id("customer", _required(row, "AccountId"))
        if customer_id not in run.known_customers and customer_id not in self.known:
            try:
                self.ledger.read(Customer, customer_id)
            except NotFoundError:
                raise RowError("AccountId", f"no imported customer {row['AccountId']}") from None
            run.known_customers.add(customer_id)
        opportunity_id = imported_id("opportunity", _required(row, "Id"))
        with recorded_at(_moment(row, "CreatedDate")):
            deal = Opportunity.open(
                customer_id=str(customer_id),
                owner_id=self._person(row, "OwnerId"),
                title=_required(row, "Name"),
                source=_required(row, "LeadSource"),
                amount=_decimal(row, "Amount"),
                expected_close=_date(row, "CloseDate"),
                product=_required(row, "Product"),
                region=_required(row, "Region"),
                actor=self.actor,
                org=self.org,
                opportunity_id=opportunity_id,
            )
        run.aggregates[opportunity_id] = deal
        return opportunity_id

    def _history_row(self, run: _Run, line: int, row: dict[str, str]) -> UUID:
        deal = run.deal(imported_id("opportunity", _required(row, "OpportunityId")))
        moment = _moment(row, "CreatedDate")
        last = run.last_change.get(deal.id, deal.modified_on)
        if moment < last:
            raise RowError("CreatedDate", f"earlier than the deal's change before it ({last})")
        with recorded_at(moment):
            HistoryStep(self, run, deal, row, f"imported from {run.file} line {line}").apply()
        run.last_change[deal.id] = moment
        return deal.id

    def _person(self, row: dict[str, str], column: str) -> str:
        person = _required(row, column)
        if not self.org.is_active(person):
            raise RowError(column, f"no active person {person!r} in the organisation")
        return person


def _customer_claims(row: dict[str, str], ledger: SalesLedger) -> list[tuple[str, str]]:
    """The uniqueness claims a customer row makes (keyed digests), with the kind of each."""
    name, tax_id, phone, email = (row[c] or None for c in ("Name", "TaxId", "Phone", "Email"))
    keys = uniqueness_keys(name or "", tax_id, phone, email)
    return [(ledger.subject_keys.claim_digest(kind, value), kind) for kind, value in keys.items()]


_CUSTOMER_COLUMNS = {"name": "Name", "tax_id": "TaxId", "phone": "Phone", "email": "Email"}


class _Run:
    """One file's import in progress: the aggregates it changed, the claims it makes."""

    def __init__(self, importer: CrmImport, kind: str, file: str) -> None:
        self.importer = importer
        self.kind = kind
        self.file = file
        self.aggregates: dict[UUID, Aggregate] = {}
        self.claims: list[tuple[str, str]] = []
        self.unique: dict[str, str] = {}
        self.taken: dict[str, str] = {}
        self.known_customers: set[UUID] = set()
        self.last_change: dict[UUID, datetime] = {}
        self.rule_column = "StageName"
        self.checked: dict[UUID, int] = {}

    def check_new_events(self, aggregate_id: UUID) -> None:
        """``EventFieldError`` if an event the last row made breaks a storage limit."""
        pending = self.aggregates[aggregate_id].pending_events
        for event in pending[self.checked.get(aggregate_id, 0) :]:
            check_event(event)
        self.checked[aggregate_id] = len(pending)

    def claim_key(self, row: dict[str, str]) -> str:
        if self.kind != "history":
            return f"import:{self.kind}:{row.get('Id', '').strip()}"
        content = "|".join(row.get(column, "") for column in COLUMNS["history"])
        return f"import:history:{hashlib.sha256(content.encode()).hexdigest()}"

    def deal(self, opportunity_id: UUID) -> Opportunity:
        found = self.aggregates.get(opportunity_id) or self.importer.known.get(opportunity_id)
        if found is None:
            try:
                found = self.importer.ledger.load(Opportunity, opportunity_id)
            except NotFoundError:
                raise RowError("OpportunityId", "no imported opportunity with this id") from None
        self.aggregates[opportunity_id] = found
        assert isinstance(found, Opportunity)
        return found


class HistoryStep:
    """One OpportunityHistory row: the decisions that bring the deal to the row's state."""

    def __init__(
        self, importer: CrmImport, run: _Run, deal: Opportunity, row: dict[str, str], why: str
    ) -> None:
        self.importer, self.run, self.deal, self.row, self.why = importer, run, deal, row, why
        self.actor = importer.actor

    def apply(self) -> None:
        stage, status = _stage(self.row)
        self._qualification()
        if status == Status.WON:
            if self.deal.status != Status.WON:
                self._rule("StageName", lambda: self._win())
            return
        if status == Status.LOST:
            if self.deal.status != Status.LOST:
                self._rule("StageName", lambda: self._lose())
            return
        if not self.deal.is_open:
            self._rule("StageName", lambda: self.deal.reopen(self.why, stage, self.actor))
        if stage != self.deal.stage:
            self._rule("StageName", lambda: self.deal.advance_stage(stage, self.why, self.actor))
        self._open_fields()

    def _open_fields(self) -> None:
        deal, row = self.deal, self.row
        if row["Amount"] and (amount := _decimal(row, "Amount")) != deal.amount:
            self._rule("Amount", lambda: deal.revise_amount(amount, self.why, self.actor))
        if row["CloseDate"] and (close := _date(row, "CloseDate")) != deal.expected_close:
            self._rule("CloseDate", lambda: deal.revise_close_date(close, self.why, self.actor))
        owner = row["OwnerId"]
        if owner and owner != deal.owner_id:
            self.importer._person(row, "OwnerId")
            self._rule(
                "OwnerId",
                lambda: deal.change_primary_owner(owner, self.why, self.actor, self.importer.org),
            )

    def _qualification(self) -> None:
        wanted = self.row["Qualification"].strip()
        if not wanted or wanted == self.deal.qualification.value:
            return
        if wanted == Qualification.QUALIFIED.value:
            criteria = dict.fromkeys(QUALIFICATION_CRITERIA, True)
            self._rule("Qualification", lambda: self.deal.qualify(criteria, self.actor))
        elif wanted == Qualification.NURTURING.value:
            criteria = dict.fromkeys(QUALIFICATION_CRITERIA, False)
            self._rule(
                "Qualification", lambda: self.deal.disqualify(criteria, self.why, self.actor)
            )
        else:
            raise RowError("Qualification", "must be qualified or nurturing (or empty)")

    def _win(self) -> None:
        self.deal.win(_decimal(self.row, "Amount"), _date(self.row, "CloseDate"), self.actor)

    def _lose(self) -> None:
        reason = self.row["LostReason"].strip() or self.why
        competitor = self.row["Competitor"].strip() or None
        self.deal.lose(reason, competitor, _date(self.row, "CloseDate"), self.actor)

    @staticmethod
    def _rule(column: str, decide: Callable[[], None]) -> None:
        try:
            decide()
        except DomainError as error:
            raise RowError(column, str(error)) from None


def _rows(text: str, kind: str, report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS[kind] if c not in (reader.fieldnames or []) and c not in OPTIONAL]
    if missing:
        for column in missing:
            report.problems.append(RowProblem(1, column, "missing column"))
        return
    for row in reader:
        yield reader.line_num, {c: (row.get(c) or "").strip() for c in COLUMNS[kind]}


def _required(row: dict[str, str], column: str) -> str:
    value = row.get(column, "")
    if not value:
        raise RowError(column, "is empty")
    return value


def _decimal(row: dict[str, str], column: str) -> Decimal:
    try:
        value = Decimal(_required(row, column).replace(",", ""))
    except InvalidOperation:
        raise RowError(column, f"not a number: {row[column]!r}") from None
    if not value.is_finite():
        raise RowError(column, f"not a number: {row[column]!r}")
    return value


def _date(row: dict[str, str], column: str) -> date:
    try:
        return date.fromisoformat(_required(row, column)[:10])
    except ValueError:
        raise RowError(column, f"not a date (YYYY-MM-DD): {row[column]!r}") from None


def _moment(row: dict[str, str], column: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_required(row, column).replace("Z", "+00:00"))
    except ValueError:
        raise RowError(column, f"not a time (ISO 8601): {row[column]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _stage(row: dict[str, str]) -> tuple[int, Status]:
    name = _required(row, "StageName")
    if name == WON:
        return 8, Status.WON
    if name == LOST:
        return 0, Status.LOST
    if name.isdigit() and 1 <= int(name) <= 7:
        return int(name), Status.OPEN
    raise RowError("StageName", f"must be 1–7, {WON!r} or {LOST!r}: {name!r}")


def run_import(
    ledger: SalesLedger,
    actor: str,
    files: dict[str, Path],
    *,
    dry_run: bool = False,
    progress: bool = True,
) -> list[ImportReport]:
    """Import the given files (kind → path) in the order customers, opportunities, history."""
    importer = CrmImport(ledger, actor, progress=progress)
    return [importer.run(kind, files[kind], dry_run=dry_run) for kind in COLUMNS if kind in files]


def describe(report: ImportReport) -> Iterator[str]:
    """The report as lines of text: totals, then one line per problem."""
    verdict = "imported" if report.written else "not written"
    yield (
        f"{report.file} ({report.kind}): {report.rows} rows, {report.imported} to import, "
        f"{report.already_imported} already imported, {report.events} events; {verdict}"
    )
    for problem in report.problems:
        yield f"  line {problem.line}: {problem.field}: {problem.reason}"
