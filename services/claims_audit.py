"""``verify``'s check of the claims table against the events.

The chains and seals protect the events; a claim is only a row beside them, which
someone with access to the table could insert or delete. So every claim must be one the
events make (``commands.claims``), and every token claim and customer claim the events
make must be recorded:

- ``command:ACTOR:ID`` → ``AGGREGATE:VERSION[:…]``: that event exists and ACTOR recorded it;
- ``token:DIGEST`` → PERSON and ``token-revoked:DIGEST`` → TOKEN: the organisation's
  ``TokenIssued`` of that digest for that person, its ``TokenRevoked``;
- ``customer:KIND:HMAC`` → CUSTOMER: recomputed under the claims key from that customer's
  registration and profile events (of an erased customer: no more claims of a kind than
  its events could have made);
- ``import:KIND:ID`` → ``FILE:LINE:AGGREGATE``: the aggregate exists (and, for customers
  and opportunities, is the one the import derives from ID).

The table is read once, ordered by value (a customer's claims together), a batch at a
time; memory holds one batch and the organisation's tokens.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent

from aggregates.organisation import ORGANISATION_ID
from commands.claims import (
    CUSTOMER_TOPICS,
    ORGANISATION_TOPICS,
    CustomerClaims,
    OrganisationClaims,
    command_claim_actor,
    command_outcome,
    customer_claims,
)
from commands.personal_data import CLAIMS_SUBJECT, SubjectKeys, keyed_claim
from services.claims_store import ClaimsStore, claims_store_for
from services.importing.crm import imported_id

BATCH = 2000
"""Claims checked together (a customer's are never split between two batches)."""
IMPORTED_KINDS = {"customers": "customer", "opportunities": "opportunity"}


@dataclass(frozen=True)
class ClaimBreak:
    """A claim the events do not make ("claim"), or one they make that the table lacks
    ("missing claim")."""

    kind: str
    claim: str
    value: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.claim} -> {self.value}: {self.detail}"


@dataclass
class ClaimsReport:
    """How many claims were checked and every one the events do not account for."""

    claims: int = 0
    breaks: list[ClaimBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def summary(self) -> str:
        if self.ok:
            return f"ok: each of {self.claims} claims is made by the events"
        first = f"BROKEN: {self.breaks[0]}"
        more = len(self.breaks) - 1
        return first + (f"\n({more} further claim breaks)" if more else "")


class ClaimsAuditor:
    """Derives every claim of the table from the stored events (see the module)."""

    def __init__(
        self, store: ClaimsStore, mapper: Mapper[Any], subject_keys: SubjectKeys
    ) -> None:
        self.store = store
        self.mapper = mapper
        self.subject_keys = subject_keys
        self.claims_key = subject_keys.key(CLAIMS_SUBJECT) or None

    def audit(self) -> ClaimsReport:
        """Check every claim, then the token claims the events make against the table."""
        report = ClaimsReport()
        org = OrganisationClaims()
        org_events = self.store.select_events_of([ORGANISATION_ID], ORGANISATION_TOPICS)
        for event in self._decoded(org_events):
            org.add(event)
        for batch in _batches(self.store.iter_claims(), BATCH):
            report.claims += len(batch)
            by_kind: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for claim, value in batch:
                by_kind[claim.split(":", 1)[0]].append((claim, value))
            self._check_commands(by_kind.pop("command", []), report)
            self._check_tokens(by_kind.pop("token", []) + by_kind.pop("token-revoked", []),
                               org, report)
            self._check_customers(by_kind.pop("customer", []), org, report)
            self._check_imports(by_kind.pop("import", []), report)
            for claim, value in (row for rows in by_kind.values() for row in rows):
                report.breaks.append(ClaimBreak("claim", claim, value, "no event makes this kind"))
        self._report_missing(org.tokens, report)
        return report

    def _check_commands(self, claims: list[tuple[str, str]], report: ClaimsReport) -> None:
        named: dict[str, tuple[UUID, int]] = {}
        for claim, value in claims:
            try:
                named[claim] = command_outcome(value)
            except ValueError:
                report.breaks.append(ClaimBreak("claim", claim, value, "names no event"))
        events = self.store.select_events_at(list(set(named.values())))
        for claim, value in claims:
            if claim not in named:
                continue
            stored = events.get(named[claim])
            actor = command_claim_actor(claim)
            if stored is None:
                report.breaks.append(ClaimBreak("claim", claim, value, "names no stored event"))
                continue
            try:
                recorded = self._actor_of(stored)
            except ValueError:  # a damaged event, which the chains report as such
                report.breaks.append(ClaimBreak("claim", claim, value, "names an unreadable event"))
                continue
            if recorded != actor:
                report.breaks.append(
                    ClaimBreak("claim", claim, value,
                               f"the event it names was recorded by {recorded!r}, not {actor!r}")
                )

    @staticmethod
    def _check_tokens(
        claims: list[tuple[str, str]], org: OrganisationClaims, report: ClaimsReport
    ) -> None:
        for claim, value in claims:
            made = org.tokens.get(claim)
            if made is None:
                detail = "no TokenIssued/TokenRevoked event of the organisation makes it"
            elif made != value:
                detail = f"the organisation's events give {made!r}"
            else:
                continue
            report.breaks.append(ClaimBreak("claim", claim, value, detail))

    def _check_customers(
        self, claims: list[tuple[str, str]], org: OrganisationClaims, report: ClaimsReport
    ) -> None:
        by_customer: dict[str, list[str]] = defaultdict(list)
        for claim, value in claims:
            by_customer[value].append(claim)
        ids = {value: _uuid(value) for value in by_customer}
        stored: dict[UUID, list[StoredEvent]] = defaultdict(list)
        customers = [uid for uid in ids.values() if uid]
        for event in self.store.select_events_of(customers, CUSTOMER_TOPICS):
            stored[_as_uuid(event.originator_id)].append(event)
        with self._keys_of(customers):
            self._compare_customers(by_customer, ids, stored, org, report)

    def _compare_customers(
        self,
        by_customer: dict[str, list[str]],
        ids: dict[str, UUID | None],
        stored: dict[UUID, list[StoredEvent]],
        org: OrganisationClaims,
        report: ClaimsReport,
    ) -> None:
        digest = partial(keyed_claim, self.claims_key) if self.claims_key else None
        for value, keys in by_customer.items():
            uid = ids[value]
            if uid is None or not stored.get(uid) or digest is None:
                detail = "names no customer" if digest else "there is no claims key"
                report.breaks.extend(ClaimBreak("claim", key, value, detail) for key in keys)
                continue
            try:
                made = customer_claims(self._decoded(stored[uid]), digest, org.country_codes)
            except ValueError:  # a damaged event, which the chains report as such
                report.breaks.extend(
                    ClaimBreak("claim", key, value, "the customer's events are unreadable")
                    for key in keys
                )
                continue
            self._compare_customer(value, keys, made, report)

    @staticmethod
    def _compare_customer(
        customer: str, keys: list[str], made: CustomerClaims, report: ClaimsReport
    ) -> None:
        derivable = made.derivable
        unexplained: Counter[str] = Counter()
        for key in keys:
            if key in derivable:
                continue
            kind = (key.split(":", 2) + [""])[1]
            unexplained[kind] += 1
            if unexplained[kind] > made.erased[kind]:
                detail = (
                    f"more {kind} claims than its erased events could have made"
                    if made.erased[kind] else "none of the customer's events makes it"
                )
                report.breaks.append(ClaimBreak("claim", key, customer, detail))
        held = set(keys)
        for kind, acceptable in made.required:
            if not acceptable & held:
                report.breaks.append(
                    ClaimBreak("missing claim", f"customer:{kind}:…", customer,
                               f"the customer's events claim its {kind}; the table lacks it")
                )

    def _check_imports(self, claims: list[tuple[str, str]], report: ClaimsReport) -> None:
        touched: dict[str, UUID] = {}
        for claim, value in claims:
            _, kind, external = (claim.split(":", 2) + ["", ""])[:3]
            aggregate = _uuid(value.rsplit(":", 1)[-1])
            derived = kind in IMPORTED_KINDS and imported_id(IMPORTED_KINDS[kind], external)
            if aggregate is None:
                report.breaks.append(ClaimBreak("claim", claim, value, "names no record"))
            elif derived and aggregate != derived:
                report.breaks.append(
                    ClaimBreak("claim", claim, value, f"is not the record imported as {external}")
                )
            else:
                touched[claim] = aggregate
        found = self.store.select_events_at([(uid, 1) for uid in set(touched.values())])
        for claim, value in claims:
            if claim in touched and (touched[claim], 1) not in found:
                report.breaks.append(ClaimBreak("claim", claim, value, "names no stored record"))

    def _report_missing(self, made: dict[str, str], report: ClaimsReport) -> None:
        """Claims the events make that the table does not hold (a deleted claim)."""
        keys = list(made)
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            held = self.store.select_claims(chunk)
            report.breaks.extend(
                ClaimBreak("missing claim", key, made[key],
                           "an event makes it; the table lacks it")
                for key in chunk
                if key not in held
            )

    def _keys_of(self, aggregates: list[UUID]) -> AbstractContextManager[None]:
        """Decode with the aggregates' personal-data keys read in one go."""
        subjects = [str(uid) for uid in aggregates]
        return self.subject_keys.preloaded(self.store.select_subject_keys(subjects))

    def _actor_of(self, stored: StoredEvent) -> Any:
        """Who recorded the event: its ``actor``, read without decoding (and decrypting)
        the rest of it, as the mapper would read it."""
        state = stored.state
        if self.mapper.cipher:
            state = self.mapper.cipher.decrypt(state)
        if self.mapper.compressor:
            state = self.mapper.compressor.decompress(state)
        return orjson.loads(state).get("actor")

    def _decoded(self, events: list[StoredEvent]) -> Iterator[Any]:
        return (self._decode(event) for event in events)

    def _decode(self, stored: StoredEvent) -> Any:
        return self.mapper.to_domain_event(stored)


def audit_claims(ledger: Any) -> ClaimsReport:
    """Check the claims of ``ledger`` (a ``SalesLedger``) against its events."""
    store = claims_store_for(ledger.recorder)
    return ClaimsAuditor(store, ledger.mapper, ledger.subject_keys).audit()


def _batches(rows: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    """``rows`` in lists of about ``size``, never splitting rows of one value."""
    batch: list[tuple[str, str]] = []
    for row in rows:
        if len(batch) >= size and row[1] != batch[-1][1]:
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _as_uuid(originator_id: UUID | str) -> UUID:
    return originator_id if isinstance(originator_id, UUID) else UUID(originator_id)


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
