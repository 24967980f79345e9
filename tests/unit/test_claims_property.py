"""Hypothesis drives random sequences of the commands that make claims (customers
registered, changed and erased, tokens issued, rotated and revoked, the country code
changed, idempotency keys reused) through the real application (embedded store), and
checks after every step that ``verify``'s claims check finds every claim made by the
events and every claim the events make recorded: no false break."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aggregates.errors import DomainError
from commands.ledger import SalesLedger
from services.claims_audit import audit_claims
from services.settings import Settings
from tests.conftest import build_team

actors = st.sampled_from(["rep1", "rep2", "mgr", "admin", "auditor"])
command_ids = st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"]))
names = st.sampled_from(["Acme", "Acme Ltd", "Globex", "Initech", "Umbrella"])
emails = st.one_of(st.none(), st.sampled_from(["a@x.example", "b@x.example", "c@y.example"]))
phones = st.one_of(st.none(), st.sampled_from(["138 0000 0001", "030 1234567", "+49 30 1"]))
tax_ids = st.one_of(st.none(), st.sampled_from(["T-1", "t1", "T-2"]))
identity = st.fixed_dictionaries({}, optional={"email": emails, "phone": phones, "tax_id": tax_ids})


class ClaimsMachine(RuleBasedStateMachine):
    """Random claim-making commands by random people."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        path = Path(self.directory.name) / "ledger.db"
        self.ledger = SalesLedger(
            env=Settings(store="sqlite", sqlite_path=str(path)).event_store_env()
        )
        build_team(self.ledger)
        self.customers: list[str] = []
        self.tokens: list[str] = []

    def attempt(self, command: object) -> object:
        with contextlib.suppress(DomainError):
            return command()  # type: ignore[operator]
        return None

    @rule(actor=actors, name=names, email=emails, phone=phones, profile=identity, key=command_ids)
    def register(
        self, actor: str, name: str, email: str | None, phone: str | None,
        profile: dict[str, str | None], key: str | None,
    ) -> None:
        result = self.attempt(lambda: self.ledger.register_customer(
            name=name, source="web", email=email, phone=phone, profile=profile,
            actor=actor, command_id=key,
        ))
        if result is not None:
            self.customers.append(result.aggregate_id)  # type: ignore[attr-defined]

    @rule(data=st.data(), changes=identity, actor=actors, key=command_ids)
    def supplement(
        self, data: st.DataObject, changes: dict[str, str | None], actor: str, key: str | None
    ) -> None:
        if self.customers:
            customer = data.draw(st.sampled_from(self.customers))
            self.attempt(lambda: self.ledger.supplement_customer(
                customer, {"city": "Wuxi", **changes}, actor=actor, command_id=key
            ))

    @rule(data=st.data(), actor=st.sampled_from(["admin", "rep1"]))
    def erase(self, data: st.DataObject, actor: str) -> None:
        if self.customers:
            customer = data.draw(st.sampled_from(self.customers))
            self.attempt(lambda: self.ledger.erase_customer(customer, "asked", actor=actor))

    @rule(person=actors, key=command_ids)
    def issue(self, person: str, key: str | None) -> None:
        issued = self.attempt(
            lambda: self.ledger.issue_token(person, actor="admin", command_id=key)
        )
        if issued is not None:
            self.tokens.append(issued[0])  # type: ignore[index]

    @rule(data=st.data(), rotate=st.booleans(), key=command_ids)
    def rotate_or_revoke(self, data: st.DataObject, rotate: bool, key: str | None) -> None:
        if not self.tokens:
            return
        token = data.draw(st.sampled_from(self.tokens))
        if rotate:
            rotated = self.attempt(
                lambda: self.ledger.rotate_token(token, actor="admin", command_id=key)
            )
            if rotated is not None:
                self.tokens.append(rotated[0])  # type: ignore[index]
        else:
            self.attempt(lambda: self.ledger.revoke_token(token, "lost", actor="admin"))

    @rule(code=st.sampled_from(["86", "49", "1"]))
    def move(self, code: str) -> None:
        self.attempt(lambda: self.ledger.configure({"country_code": code}, "moved", actor="admin"))

    @invariant()
    def every_claim_comes_from_the_events(self) -> None:
        report = audit_claims(self.ledger)
        assert report.ok, report.breaks

    def teardown(self) -> None:
        self.ledger.close()
        self.directory.cleanup()


ClaimsMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClaimsDerivedFromEvents = ClaimsMachine.TestCase
