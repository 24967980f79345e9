"""The claims table checked against the events: a forged or deleted claim, written below
the application, is reported by ``verify``; a ledger's own claims never are."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from commands.ledger import SalesLedger
from commands.personal_data import CLAIMS_SUBJECT, keyed_claim
from services.claims_audit import ClaimsReport, audit_claims
from services.cli import main
from services.importing.crm import CrmImport
from services.schema_admin import init_db
from services.settings import Settings
from tests.conftest import below_the_application, build_team, provide_app_role

CUSTOMERS_CSV = (
    "Id,Name,Source,TaxId,Phone,Email,OwnerId,CreatedDate\n"
    "A-1,Imported One Ltd,web,91-310000-7,138 0013 8000,one@imported.example,rep1,2025-11-03\n"
    "A-2,Imported Two,web,,,,rep2,2025-11-04\n"
)


class ClaimedLedger:
    """A ledger whose commands make every kind of claim, and a raw connection to its
    claims table that bypasses the application (and the append-only triggers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger = SalesLedger(env=settings.event_store_env())
        ledger = self.ledger
        build_team(ledger)
        self.token_id, _ = ledger.issue_token("rep1", actor="admin", command_id="tok-1")
        rotated, _ = ledger.rotate_token(self.token_id, actor="admin", command_id="rot-1")
        other, _ = ledger.issue_token("rep2", actor="admin")
        ledger.revoke_token(other, "lost", actor="admin", command_id="rev-1")
        self.customer = ledger.register_customer(
            name="Acme Trading",
            source="web",
            tax_id="91-1234",
            phone="138 0000 0001",
            email="buyer@acme.example",
            profile={"city": "Wuxi"},
            actor="rep1",
            command_id="reg-1",
        ).aggregate_id
        ledger.supplement_customer(
            self.customer, {"email": "second@acme.example"}, actor="rep1", command_id="sup-1"
        )
        ledger.configure({"country_code": "49"}, "moved to Germany", actor="admin")
        ledger.register_customer(
            name="Berlin GmbH",
            source="web",
            phone="030 1234567",
            profile={"tax_id": "DE-1", "email": "info@berlin.example"},
            actor="rep2",
        )
        self.erased = ledger.register_customer(
            name="Erased Person",
            source="web",
            phone="030 7654321",
            email="gone@erased.example",
            actor="rep1",
        ).aggregate_id
        ledger.supplement_customer(self.erased, {"tax_id": "X-9"}, actor="rep1")
        ledger.erase_customer(self.erased, "asked", actor="admin", command_id="erase-1")
        self.deal = ledger.open_opportunity(
            customer_id=self.customer,
            owner_id="rep1",
            title="ERP",
            source="web",
            amount=Decimal("1000"),
            expected_close=date(2026, 9, 1),
            product="erp",
            region="north",
            actor="rep1",
            command_id="open-1",
        ).aggregate_id
        importer = CrmImport(ledger, "admin", progress=False)
        assert importer.run_data("customers", "accounts.csv", CUSTOMERS_CSV.encode()).written
        self.rotated = rotated

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run ``statement`` as the tables' owner, below the application (and its triggers)."""
        table = self.ledger.recorder.events_table_name  # type: ignore[attr-defined]
        below_the_application(
            self.settings,
            statement,
            params,
            sqlite_triggers=("ledger_claims_no_delete", f"{table}_no_update"),
        )

    def forge(self, claim: str, value: str) -> None:
        self.execute("INSERT INTO ledger_claims (claim, value) VALUES (%s, %s)", (claim, value))

    def audit(self) -> ClaimsReport:
        return audit_claims(self.ledger)


@pytest.fixture
def claimed(store_settings: Settings) -> Iterator[ClaimedLedger]:
    ledger = ClaimedLedger(store_settings)
    yield ledger
    ledger.ledger.close()


def _only_break(report: ClaimsReport) -> str:
    assert len(report.breaks) == 1, report.breaks
    return str(report.breaks[0])


def test_a_ledgers_own_claims_are_all_made_by_its_events(claimed: ClaimedLedger) -> None:
    report = claimed.audit()
    assert report.ok, report.breaks
    assert report.claims >= 20  # tokens, idempotent commands, customers, an import


def test_a_forged_token_claim_for_the_admin_is_reported(claimed: ClaimedLedger) -> None:
    digest = hashlib.sha256(b"sl_forged-token").hexdigest()
    claimed.forge(f"token:{digest}", "admin")
    found = _only_break(claimed.audit())
    assert found.startswith(f"claim token:{digest} -> admin")
    assert "no TokenIssued" in found


def test_a_token_claim_rewritten_to_another_person_is_reported(claimed: ClaimedLedger) -> None:
    digest = hashlib.sha256(b"sl_x").hexdigest()
    claimed.forge(f"token-revoked:{digest}", claimed.rotated)
    assert "token-revoked" in _only_break(claimed.audit())


def test_forged_command_claims_are_reported(claimed: ClaimedLedger) -> None:
    claimed.forge("command:rep2:replayed", f"{claimed.deal}:1")  # rep1 opened the deal
    claimed.forge("command:rep1:nowhere", f"{claimed.deal}:99")
    claimed.forge("command:rep1:garbage", "not-an-event")
    report = claimed.audit()
    details = {b.claim: b.detail for b in report.breaks}
    assert set(details) == {"command:rep2:replayed", "command:rep1:nowhere", "command:rep1:garbage"}
    assert "recorded by 'rep1', not 'rep2'" in details["command:rep2:replayed"]
    assert details["command:rep1:nowhere"] == "names no stored event"


def test_a_forged_customer_uniqueness_claim_is_reported(claimed: ClaimedLedger) -> None:
    key = claimed.ledger.subject_keys.key(CLAIMS_SUBJECT)
    assert key
    blocking = keyed_claim(key, "email", "newcomer@example.com")  # blocks a registration
    claimed.forge(blocking, claimed.customer)
    found = _only_break(claimed.audit())
    assert found.startswith(f"claim {blocking} -> {claimed.customer}")
    assert "none of the customer's events makes it" in found


def test_a_claim_of_an_erased_customer_beyond_what_its_events_made_is_reported(
    claimed: ClaimedLedger,
) -> None:
    """Its events are unreadable now: its registration (with an e-mail) and a profile
    change (which may have named one) could have made two e-mail claims, no more."""
    key = claimed.ledger.subject_keys.key(CLAIMS_SUBJECT)
    assert key
    claimed.forge(keyed_claim(key, "email", "someone@else.example"), claimed.erased)
    assert claimed.audit().ok
    claimed.forge(keyed_claim(key, "email", "third@else.example"), claimed.erased)
    found = _only_break(claimed.audit())
    assert found.startswith("claim customer:email:") and claimed.erased in found
    assert "more email claims than its erased events could have made" in found


def test_a_claim_naming_no_customer_and_an_unknown_kind_are_reported(
    claimed: ClaimedLedger,
) -> None:
    claimed.forge("customer:email:" + "ab" * 32, "00000000-0000-0000-0000-000000000000")
    claimed.forge("whatever:1", "x")
    claimed.forge("import:customers:A-3", "accounts.csv:4:" + claimed.customer)
    details = {b.claim: b.detail for b in claimed.audit().breaks}
    assert details == {
        "customer:email:" + "ab" * 32: "names no customer",
        "whatever:1": "no event makes this kind",
        "import:customers:A-3": "is not the record imported as A-3",
    }


def test_deleted_claims_are_reported_missing(claimed: ClaimedLedger) -> None:
    rows = claimed.ledger.store.select_claims(
        [f"token:{d}" for d in _token_digests(claimed.ledger)]
    )
    deleted_token = sorted(rows)[0]
    claimed.execute("DELETE FROM ledger_claims WHERE claim = %s", (deleted_token,))
    claimed.execute(
        "DELETE FROM ledger_claims WHERE claim LIKE 'customer:email:%%' AND value = %s",
        (claimed.customer,),
    )
    report = claimed.audit()
    assert {(b.kind, b.claim) for b in report.breaks} == {
        ("missing claim", deleted_token),
        ("missing claim", "customer:email:…"),
    }
    assert all(b.kind == "missing claim" for b in report.breaks)


def test_verify_exits_1_and_names_the_forged_claim(
    claimed: ClaimedLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_STORE", claimed.settings.store)
    monkeypatch.setenv("LEDGER_SQLITE_PATH", claimed.settings.sqlite_path)
    monkeypatch.setenv("LEDGER_POSTGRES_DBNAME", claimed.settings.postgres_dbname)
    assert main(["verify"]) == 0
    assert "claims: ok" in capsys.readouterr().out
    digest = hashlib.sha256(b"sl_forged-token").hexdigest()
    claimed.forge(f"token:{digest}", "admin")
    assert main(["verify"]) == 1
    assert f"claims: BROKEN: claim token:{digest} -> admin" in capsys.readouterr().out
    assert main(["verify", "--aggregate", claimed.customer]) == 0
    assert "claims: not checked" in capsys.readouterr().out


def test_a_damaged_event_makes_its_claims_unaccounted_for_not_a_crash(
    claimed: ClaimedLedger,
) -> None:
    table = claimed.ledger.recorder.events_table_name  # type: ignore[attr-defined]
    key = claimed.customer if claimed.settings.store == "postgres" else UUID(claimed.customer).hex
    claimed.execute(
        f"UPDATE {table} SET state = %s WHERE originator_id = %s AND originator_version = 1",
        (b"{not json", key),
    )
    details = {b.claim: b.detail for b in claimed.audit().breaks}
    assert details["command:rep1:reg-1"] == "names an unreadable event"
    assert "the customer's events are unreadable" in details.values()


@pytest.mark.integration
def test_the_check_needs_no_second_pooled_connection(postgres_settings: Settings) -> None:
    """The claims stream on a connection of their own while the events are read, so a
    pool of one connection does (and a database bound on idle transactions, which the
    stream's transaction may be between pages, does not end it). PostgreSQL only: SQLite
    has no pool."""
    ClaimedLedger(postgres_settings).ledger.close()
    env = {
        **postgres_settings.event_store_env(),
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": "0",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1",
    }
    small = SalesLedger(env=env)
    try:
        report = audit_claims(small)
        assert report.ok and report.claims >= 20, report.breaks
    finally:
        small.close()


@pytest.mark.integration
def test_the_application_role_runs_the_check(postgres_settings: Settings) -> None:
    """``verify`` as the role ``init-db`` makes for the application, which may only read
    the ledger's tables: it finds the claims sound, and a forged one."""
    role = "ledger_app_claims_tests"
    provide_app_role(role, password="claims-secret")
    init_db(postgres_settings, app_role=role)
    as_app = {"postgres_user": role, "postgres_password": "claims-secret"}
    claimed = ClaimedLedger(postgres_settings.model_copy(update=as_app))
    try:
        assert claimed.audit().ok
        claimed.forge("token:" + "0" * 64, "admin")
        assert [b.claim for b in claimed.audit().breaks] == ["token:" + "0" * 64]
    finally:
        claimed.ledger.close()


def _token_digests(ledger: SalesLedger) -> list[str]:
    return [digest for _, digest, _ in ledger.organisation().tokens.values()]
