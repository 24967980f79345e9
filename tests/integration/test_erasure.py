"""Erasing a customer's personal data (crypto-shredding), end to end on both stores.

Register, trade (a deal opened, advanced, won), erase; then the erased values are
nowhere in the database files (events, claims, projections, after VACUUM), the chains
still verify and ``verify`` reports the erasure, as-of history still shows every
business fact of the deal, and rebuilding the projections from event 1 leaves no
plaintext behind.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from aggregates.customer import Customer, uniqueness_keys
from aggregates.errors import NotAllowedError, RuleViolationError
from aggregates.evaluation import QUALIFICATION_CRITERIA
from commands.ledger import SalesLedger
from events.base import recorded_at
from events.personal import ERASED
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from services.claims_audit import audit_claims
from services.cli_audit import erasure_summary
from services.database import Database
from services.history import history_with_chain
from services.integrity import ChainVerifier
from services.read_store import read_store_settings
from services.relay import OutboxRelay
from services.settings import Settings
from tests.conftest import build_team, wait_for_read_horizon

NAME = "Zhang Wei Trading"
PHONE = "+86 138 0013 8000"
EMAIL = "zhang.wei@example.cn"
ADDRESS = "88 Nanjing Road West"
NOTE = "Called Zhang Wei about the renewal"
ERASED_TEXTS = (
    "Zhang Wei",
    "zhang wei",
    "zhangwei",
    "ZHANG",
    "13800138000",
    "138 0013 8000",
    "zhang.wei@example",
    "Nanjing Road",
)
"""Every form the personal data could take: as typed, normalised, in search keys."""


def trade(ledger: SalesLedger) -> tuple[str, str]:
    """A customer with personal data, an activity about a person, and a deal that is
    opened, qualified, advanced and won; its customer and deal ids."""
    with recorded_at(datetime(2026, 1, 2, 9, tzinfo=UTC)):
        customer = ledger.register_customer(
            name=NAME,
            source="web",
            phone=PHONE,
            email=EMAIL,
            owner_id="rep1",
            profile={"address": ADDRESS, "region": "east"},
            actor="rep1",
        ).aggregate_id
        ledger.log_customer_activity(customer, "call", NOTE, actor="rep1")
        deal = ledger.open_opportunity(
            customer_id=customer,
            owner_id="rep1",
            title="ERP rollout",
            source="referral",
            amount=Decimal("25000.50"),
            expected_close=date(2026, 5, 15),
            product="erp",
            region="north",
            actor="rep1",
        ).aggregate_id
    with recorded_at(datetime(2026, 2, 2, 9, tzinfo=UTC)):
        ledger.qualify_opportunity(deal, {c: True for c in QUALIFICATION_CRITERIA}, actor="rep1")
        ledger.advance_stage(deal, 7, actor="rep1")
    with recorded_at(datetime(2026, 3, 2, 9, tzinfo=UTC)):
        ledger.win_opportunity(deal, Decimal("24000.25"), date(2026, 3, 2), actor="rep1")
    return customer, deal


def leaks(data: bytes) -> list[str]:
    """The erased values found in ``data`` (bytes of a file, or rows as text)."""
    folded = data.lower()
    return [text for text in ERASED_TEXTS if text.lower().encode() in folded]


def sqlite_files(settings: Settings) -> list[Path]:
    """Every file of the SQLite event store and read store (with journals), vacuumed."""
    import sqlite3

    paths = [Path(settings.sqlite_path), Path(read_store_settings(settings).sqlite_path)]
    for path in paths:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
    return [p for p in Path(settings.sqlite_path).parent.iterdir() if p.is_file()]


def postgres_rows_as_text(settings: Settings) -> bytes:
    """Every row of every table of the database, as text, after ``VACUUM FULL``."""
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM FULL")
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        texts: list[str] = []
        for schema, table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            texts.extend(row[0] for row in conn.execute(query))
        assert tables and texts
        return "\n".join(texts).encode()


def postgres_data_files(settings: Settings) -> list[Path]:
    """The database's own data files (``base/<oid>``), if this process may read them."""
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
            row = conn.execute(
                "SELECT current_setting('data_directory'), oid FROM pg_database "
                "WHERE datname = current_database()"
            ).fetchone()
        except psycopg.Error:
            return []
    assert row is not None
    directory = Path(row[0]) / "base" / str(row[1])
    try:
        return [p for p in directory.iterdir() if p.is_file()]
    except OSError:
        return []


@pytest.fixture
def team_ledger(store_settings: Settings) -> Iterator[SalesLedger]:
    ledger = SalesLedger(env=store_settings.event_store_env())
    build_team(ledger)
    yield ledger
    ledger.close()


def test_erased_values_are_nowhere_and_the_business_facts_stay(
    store_settings: Settings, team_ledger: SalesLedger
) -> None:
    ledger = team_ledger
    customer_id, deal_id = trade(ledger)
    database = Database(read_store_settings(store_settings))
    runner = ProjectionRunner(ledger, database, all_projections())
    wait_for_read_horizon(ledger)
    runner.catch_up()
    with database.transaction() as tx:
        rows = tx.execute(
            "SELECT name, phone FROM list_customers WHERE customer_id = %s", [customer_id]
        )
    assert [row["name"] for row in rows] == [NAME]  # the projections held it before

    before = history_with_chain(ledger, deal_id)
    ledger.erase_customer(customer_id, "erasure request of 2026-12-01", actor="admin")

    # Reads: the aggregate, in this process and a fresh one.
    for reader in (ledger, SalesLedger(env=store_settings.event_store_env())):
        customer = reader.read(Customer, customer_id)
        assert (customer.name, customer.phone, customer.email) == (ERASED, ERASED, ERASED)
        assert customer.owner_id == "rep1" and customer.erased

    # Projections: caught up, then rebuilt from event 1.
    wait_for_read_horizon(ledger)
    runner.catch_up()
    assert _customer_rows(database, customer_id) == [(ERASED, None, None)]
    runner.rebuild()
    runner.catch_up()
    assert _customer_rows(database, customer_id) == [(ERASED, None, None)]

    # The chains verify; the erasure is reported, apart from any break.
    report = ChainVerifier(ledger.recorder).verify_range()  # type: ignore[arg-type]
    assert report.ok, report.first_break
    claims = audit_claims(ledger)  # its claims are still accounted for by its events
    assert claims.ok, claims.breaks
    erased = ledger.subject_keys.store.erased_subjects()
    assert erased == [customer_id]
    assert "erased" in erasure_summary(erased) and customer_id in erasure_summary(erased)
    statuses = {e["event_type"]: e["chain"] for e in history_with_chain(ledger, customer_id)}
    assert statuses["CustomerRegistered"] == "erased" and statuses["PersonalDataErased"] == "ok"
    assert statuses["ActivityLogged"] == "erased"

    # As-of history of the deal: every business fact is still there.
    after = history_with_chain(ledger, deal_id)
    assert [e["changes"] for e in after] == [e["changes"] for e in before]
    as_of_february = history_with_chain(ledger, deal_id, as_of=datetime(2026, 2, 15, tzinfo=UTC))
    facts = [(e["event_type"], e["changes"]) for e in as_of_february]
    assert facts[0][1]["owner_id"] == "rep1" and facts[0][1]["amount"] == Decimal("25000.50")
    assert facts[-1] == ("StageAdvanced", {"from_stage": 1, "to_stage": 7, "reason": None})
    assert after[-1]["changes"]["amount"] == Decimal("24000.25")

    # The database files.
    database.close()
    if store_settings.store == "sqlite":
        ledger.close()
        for path in sqlite_files(store_settings):
            assert leaks(path.read_bytes()) == [], path
    else:
        assert leaks(postgres_rows_as_text(store_settings)) == []
        for path in postgres_data_files(store_settings):
            assert leaks(path.read_bytes()) == [], path


def _customer_rows(database: Database, customer_id: str) -> list[tuple[object, ...]]:
    with database.transaction() as tx:
        rows = tx.execute(
            "SELECT name, phone, email FROM list_customers WHERE customer_id = %s",
            [customer_id],
        )
        grams = tx.execute(
            "SELECT count(*) AS n FROM list_customer_grams WHERE customer_id = %s", [customer_id]
        )
        names = tx.execute(
            "SELECT name FROM monitoring_customers WHERE customer_id = %s", [customer_id]
        )
    assert grams[0]["n"] == 0
    assert [r["name"] for r in names] == [ERASED]
    return [(r["name"], r["phone"], r["email"]) for r in rows]


def test_uniqueness_claims_hold_keyed_digests_and_still_refuse_duplicates(
    team_ledger: SalesLedger,
) -> None:
    first = team_ledger.register_customer(
        name=NAME, source="web", phone=PHONE, email=EMAIL, actor="rep1"
    )
    with pytest.raises(Exception, match="same name") as refused:
        team_ledger.register_customer(name="Zhang-Wei Trading Ltd.", source="web", actor="rep1")
    assert first.aggregate_id in str(refused.value)
    keys = uniqueness_keys(NAME, None, PHONE, EMAIL)
    digests = [team_ledger.subject_keys.claim_digest(kind, value) for kind, value in keys.items()]
    assert team_ledger.store.select_claims(digests) == dict.fromkeys(digests, first.aggregate_id)
    assert all(keys[kind] not in digest for kind, digest in zip(keys, digests, strict=True))


def test_only_an_admin_erases_and_an_erased_customer_takes_no_new_personal_data(
    team_ledger: SalesLedger,
) -> None:
    customer_id = team_ledger.register_customer(
        name=NAME, source="web", owner_id="rep1", actor="rep1"
    ).aggregate_id
    for actor in ("rep1", "mgr", "auditor"):
        with pytest.raises(NotAllowedError):
            team_ledger.erase_customer(customer_id, "asked", actor=actor)
    assert team_ledger.subject_keys.store.erased_subjects() == []
    team_ledger.erase_customer(customer_id, "asked", actor="admin")
    with pytest.raises(RuleViolationError):
        team_ledger.erase_customer(customer_id, "again", actor="admin")
    with pytest.raises(RuleViolationError):
        team_ledger.log_customer_activity(customer_id, "call", "called", actor="rep1")
    team_ledger.classify_customer(customer_id, "A", "big spender", actor="rep1")


@pytest.mark.integration
def test_kafka_messages_carry_no_plaintext_personal_data(postgres_settings: Settings) -> None:
    from tests.integration.test_kafka import read_all, relay_config

    ledger = SalesLedger(env=postgres_settings.event_store_env())
    database = Database(postgres_settings)
    prefix = f"er{uuid.uuid4().hex[:10]}"
    try:
        build_team(ledger)
        customer_id, _ = trade(ledger)
        ledger.erase_customer(customer_id, "erasure request", actor="admin")
        wait_for_read_horizon(ledger)
        relay = OutboxRelay(ledger, database, relay_config(prefix))
        stop = threading.Event()
        try:
            relay.run(stop, until_idle=True)
        finally:
            relay.close()
        delivered = read_all(prefix)
        customer_messages = [d for d in delivered if d.event.aggregate_id == customer_id]
        assert {d.event.event_name for d in customer_messages} >= {
            "CustomerRegistered",
            "ActivityLogged",
            "PersonalDataErased",
        }
        for message in delivered:
            assert leaks(repr(message.event).encode()) == [], message.event.event_name
        registered = next(
            d.event for d in customer_messages if d.event.event_name == "CustomerRegistered"
        )
        assert registered.data["name"]["subject"] == customer_id
        assert registered.data["name"]["ciphertext"]
        assert registered.data["owner_id"] == "rep1"
    finally:
        database.close()
        ledger.close()


@pytest.mark.integration
def test_processes_racing_for_a_new_key_all_get_the_same_one(postgres_settings: Settings) -> None:
    ledgers = [SalesLedger(env=postgres_settings.event_store_env()) for _ in range(6)]
    start = threading.Barrier(len(ledgers))

    def first_key(ledger: SalesLedger) -> bytes:
        start.wait(30)
        return ledger.subject_keys.key_for_writing("a subject nobody has written for yet")

    try:
        with ThreadPoolExecutor(len(ledgers)) as pool:
            keys = list(pool.map(first_key, ledgers))
    finally:
        for ledger in ledgers:
            ledger.close()
    assert len(set(keys)) == 1 and len(keys[0]) == 32
