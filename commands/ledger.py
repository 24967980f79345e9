"""The application service: load aggregates, let them decide, save their events."""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
)
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, StoredEvent

from aggregates.audit_log import AuditLog, audit_log_id
from aggregates.customer import Customer, identity_in, uniqueness_keys
from aggregates.errors import (
    AlreadyIssuedError,
    ConcurrencyConflictError,
    DomainError,
    DuplicateCustomerError,
    InvalidFieldError,
    NotAllowedError,
    NotFoundError,
    RuleViolationError,
)
from aggregates.forecast import Forecast, forecast_id, forecast_line
from aggregates.opportunity import Opportunity
from aggregates.organisation import ORGANISATION_ID, SYSTEM_ACTOR, Organisation, Role
from aggregates.ownership import require_held
from aggregates.plan import SalesPlan
from aggregates.visibility import (
    UnseenRecordError,
    may_see,
    require_visible_people,
    sees_everything,
)
from commands.concurrency import GuardMovedError, LedgerRecorder
from commands.erasure import erasure
from commands.personal_data import (
    InMemorySubjectKeys,
    PersonalDataMapper,
    PersonalDataTranscoding,
    SubjectKeys,
    subject_keys_of,
)
from commands.preconditions import IdempotencyKeyReusedError, PreconditionFailedError, expected
from commands.snapshots import LedgerSnapshot, Snapshotter
from events.base import DateAsISO
from events.limits import EventFieldError, check_encoded_size, check_event

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class CommandResult:
    """What a command did: the aggregate it touched, its new version, and the
    global position of its last event (for read-your-writes)."""

    aggregate_id: str
    version: int
    position: int | None
    duplicate: bool = False


MAX_DECISION_ATTEMPTS = 3
EXPORT_RECORD_ATTEMPTS = 5


class _StaleCacheError(Exception):
    """A cached aggregate turned out to be behind the store."""


def _aggregate_uuid(aggregate_class: type[Aggregate], aggregate_id: UUID | str) -> UUID:
    """The id as a UUID; a malformed one names no aggregate (NotFoundError)."""
    if isinstance(aggregate_id, UUID):
        return aggregate_id
    try:
        return UUID(str(aggregate_id))
    except ValueError:
        raise NotFoundError(f"no {aggregate_class.__name__.lower()} {aggregate_id}") from None


def _claim_for_command(actor: str, command_id: str) -> str:
    return f"command:{actor}:{command_id}"


class CheckedMapper(PersonalDataMapper):
    """The event boundary: every event passes ``events.limits`` before it is stored,
    whichever command made it; a value no consumer could process is refused
    (``InvalidFieldError``, naming the field) and nothing is written."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        try:
            check_event(domain_event)
            stored = super().to_stored_event(domain_event)
            check_encoded_size(domain_event, stored.state)
        except EventFieldError as error:
            raise InvalidFieldError(error.field, error.problem) from None
        return stored


class SalesLedger(Application[UUID]):
    """Every command of the sales process; each one is a load → decide → save."""

    name = "SalesLedger"
    is_snapshotting_enabled = True
    snapshot_class = LedgerSnapshot

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        fallback = InMemorySubjectKeys()
        self.subject_keys = SubjectKeys(lambda: subject_keys_of(self.recorder, fallback))
        transcoder.register(PersonalDataTranscoding(self.subject_keys, transcoder))

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=CheckedMapper
        )

    # Loading and saving.

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        cache_size = int(self.env.get("LEDGER_AGGREGATE_CACHE_SIZE") or 10_000)
        self._cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._organisation: Organisation | None = None
        self._organisation_lock = threading.Lock()
        self._local = threading.local()
        self._snapshotter = Snapshotter(self, never=(Customer,))

    def load(
        self,
        aggregate_class: type[A],
        aggregate_id: UUID | str,
        version: int | None = None,
    ) -> A:
        """The aggregate, as it is now or as it was at ``version``, for this caller alone.

        Recently saved aggregates come from an in-process cache and are brought up to
        date with any events stored since (another process may have written them).
        """
        uid = _aggregate_uuid(aggregate_class, aggregate_id)
        aggregate: Any = None
        if version is None:
            with self._cache_lock:
                aggregate = self._cache.pop(uid, None)
        try:
            if aggregate is None:
                aggregate = self.repository.get(uid, version=version)
            else:
                for event in self.stored_events(uid, gt=aggregate.version):
                    event.mutate(aggregate)
        except AggregateNotFoundError:
            raise NotFoundError(f"no {aggregate_class.__name__.lower()} {aggregate_id}") from None
        if not isinstance(aggregate, aggregate_class):
            raise NotFoundError(f"no {aggregate_class.__name__.lower()} {aggregate_id}")
        return aggregate

    def stored_events(self, aggregate_id: UUID, gt: int | None = None) -> Iterator[Aggregate.Event]:
        """The aggregate's events in order (after version ``gt``), as stored."""
        return cast("Iterator[Aggregate.Event]", self.events.get(aggregate_id, gt=gt))

    @property
    def store(self) -> LedgerRecorder:
        """The event store's recorder, with the ledger's additions (claims, guards)."""
        return cast(LedgerRecorder, self.recorder)

    def read(self, aggregate_class: type[A], aggregate_id: UUID | str) -> A:
        """The aggregate as it is now, to look at: the cache keeps its copy for the next
        command (``load`` is for changing it)."""
        uid = _aggregate_uuid(aggregate_class, aggregate_id)
        with self._cache_lock:
            cached = self._cache.get(uid)
            private = copy.deepcopy(cached) if isinstance(cached, aggregate_class) else None
        if private is None:
            loaded = self.load(aggregate_class, uid)
            self._keep_if_absent(copy.deepcopy(loaded))  # the next read starts from it
            return loaded
        for event in self.stored_events(uid, gt=private.version):
            event.mutate(private)
        return private

    def _keep_if_absent(self, aggregate: Aggregate) -> None:
        with self._cache_lock:
            if aggregate.id not in self._cache:
                self._cache[aggregate.id] = aggregate
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)

    def _keep(self, aggregate: Aggregate) -> None:
        with self._cache_lock:
            self._cache[aggregate.id] = aggregate
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def load_as_of(self, aggregate_class: type[A], aggregate_id: UUID | str, moment: datetime) -> A:
        """The aggregate as it was at ``moment``, from its events alone."""
        uid = _aggregate_uuid(aggregate_class, aggregate_id)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        version = None
        for event in self.stored_events(uid):
            if event.timestamp > moment:
                break
            version = event.originator_version
        if version is None:
            raise NotFoundError(
                f"{aggregate_class.__name__.lower()} {aggregate_id} did not exist then"
            )
        return self.load(aggregate_class, uid, version=version)

    def organisation(self, *, for_change: bool = False, fresh: bool = True) -> Organisation:
        """The organisation. Without ``for_change`` it is a shared object: read it, never
        change it. ``fresh=False`` skips bringing it up to date — for decisions, whose
        append is then guarded by the organisation's version (see ``_run``)."""
        if for_change:
            try:
                return self.load(Organisation, ORGANISATION_ID)
            except NotFoundError:
                raise NotFoundError(
                    "the organisation is not set up; run `salesledger init`"
                ) from None
        shared = self._organisation
        if shared is not None and not fresh:
            return shared
        if shared is None:
            with self._organisation_lock:
                if self._organisation is None:
                    try:
                        self._organisation = self.repository.get(ORGANISATION_ID)
                    except AggregateNotFoundError:
                        raise NotFoundError(
                            "the organisation is not set up; run `salesledger init`"
                        ) from None
                return self._organisation
        # The store is asked outside the lock: a request waits for its own round trip,
        # never for every other request's (one lock held over a query serialised them).
        newer = list(self.stored_events(ORGANISATION_ID, gt=shared.version))
        with self._organisation_lock:
            current = self._organisation
            assert current is not None
            for event in newer:
                if event.originator_version == current.version + 1:
                    event.mutate(current)
            return current

    def _share_organisation(self, saved: Organisation) -> None:
        with self._organisation_lock:
            if self._organisation is None or self._organisation.version < saved.version:
                self._organisation = copy.deepcopy(saved)

    def _unverified(self) -> set[UUID]:
        """Aggregates this thread took from the cache without checking the store."""
        if not hasattr(self._local, "unverified"):
            self._local.unverified = set()
        unverified: set[UUID] = self._local.unverified
        return unverified

    def _previous_result(self, actor: str, command_id: str | None) -> CommandResult | None:
        """The result of the command first recorded with ``command_id``; refused when the
        request now is not the one the key was first used with (its fingerprint)."""
        if not command_id:
            return None
        value = self.store.select_claims([_claim_for_command(actor, command_id)])
        if not value:
            return None
        aggregate_id, version, *fingerprint = next(iter(value.values())).split(":", 2)
        now = expected().fingerprint
        if fingerprint and now is not None and fingerprint[0] != now:
            raise IdempotencyKeyReusedError()
        position = self._position_of(aggregate_id, int(version))
        return CommandResult(aggregate_id, int(version), position, duplicate=True)

    def _position_of(self, aggregate_id: str, version: int) -> int | None:
        """The ledger position of an aggregate's event at ``version``."""
        try:
            uid = UUID(aggregate_id)
        except ValueError:
            return None
        for record in self.store.select_aggregate_chain(uid):
            if record.version == version:
                return int(record.position)
        return None

    def _check_expected_version(self, aggregate: Aggregate) -> None:
        """Refuse the change unless the aggregate was at the version the caller expects
        (a stale cached copy is loaded again rather than refused)."""
        wanted = expected().versions
        if wanted is None:
            return
        current = aggregate.version - len(aggregate.pending_events)
        if current not in wanted:
            if aggregate.id in self._unverified():
                raise _StaleCacheError
            raise PreconditionFailedError(wanted, current)

    def _save(
        self,
        aggregate: Aggregate,
        *,
        actor: str,
        command_id: str | None,
        claims: Sequence[tuple[str, str]] = (),
        guard: tuple[UUID, int] | None = None,
    ) -> CommandResult:
        self._check_expected_version(aggregate)
        all_claims = list(claims)
        if command_id:
            outcome = f"{aggregate.id}:{aggregate.version}"
            fingerprint = expected().fingerprint
            all_claims.append(
                (
                    _claim_for_command(actor, command_id),
                    f"{outcome}:{fingerprint}" if fingerprint else outcome,
                )
            )
        try:
            positions = self._append(aggregate, claims=all_claims, guard=guard)
        except IntegrityError:
            previous = self._previous_result(actor, command_id)
            if previous is not None:
                return previous
            self._raise_if_claimed(claims)
            if aggregate.id in self._unverified():
                raise _StaleCacheError from None
            raise ConcurrencyConflictError(
                f"{type(aggregate).__name__.lower()} {aggregate.id} was changed by someone "
                "else at the same time; reload and retry"
            ) from None
        self._keep(aggregate)
        if isinstance(aggregate, Organisation):
            self._share_organisation(aggregate)
        return CommandResult(
            str(aggregate.id), aggregate.version, positions[-1] if positions else None
        )

    def _save_all(
        self,
        aggregates: Sequence[Aggregate],
        *,
        actor: str,
        command_id: str | None,
        guard: tuple[UUID, int] | None = None,
    ) -> CommandResult:
        """Save several aggregates' new events in one append: all or none; the result
        names the last aggregate."""
        last = aggregates[-1]
        claims = []
        if command_id:
            claims.append((_claim_for_command(actor, command_id), f"{last.id}:{last.version}"))
        stored = [
            self.mapper.to_stored_event(event)
            for aggregate in aggregates
            for event in aggregate.collect_events()
        ]
        try:
            positions = self.recorder.insert_events(stored, claims=claims, guard=guard) or []
        except IntegrityError:
            previous = self._previous_result(actor, command_id)
            if previous is not None:
                return previous
            if any(a.id in self._unverified() for a in aggregates):
                raise _StaleCacheError from None
            raise ConcurrencyConflictError(
                "some of the records were changed by someone else at the same time; retry"
            ) from None
        for aggregate in aggregates:
            self._keep(aggregate)
            if isinstance(aggregate, Organisation):
                self._share_organisation(aggregate)
        return CommandResult(str(last.id), last.version, positions[-1] if positions else None)

    def _append(self, aggregate: Aggregate, **kwargs: Any) -> Sequence[int]:
        """Store the aggregate's new events, with ``kwargs`` (claims, guard), in one
        append; their positions.

        What ``Application.save`` does, without what the ledger does not use: runtime
        ``Protocol`` checks (~50 µs), ``ProcessingEvent``, ``Recording`` and
        ``Notification`` objects, the library's cache and in-process followers. Every
        ``SNAPSHOT_INTERVAL`` events of an aggregate it stores a snapshot
        (``commands.snapshots``).
        """
        events = aggregate.collect_events()
        stored = [self.mapper.to_stored_event(event) for event in events]
        positions = self.recorder.insert_events(stored, **kwargs) or []
        if events:
            self._snapshotter.after_append(aggregate, events[0].originator_version - 1)
        return positions

    def _raise_if_claimed(self, claims: Sequence[tuple[str, str]]) -> None:
        taken = self.store.select_claims([key for key, _ in claims])
        for key, _ in claims:
            if key in taken:
                matched_on = key.split(":")[1]
                raise DuplicateCustomerError(taken[key], matched_on)

    def _run(
        self,
        actor: str,
        command_id: str | None,
        decide: Callable[[], tuple[Aggregate, Sequence[tuple[str, str]]]],
    ) -> CommandResult:
        """Decide and save, once the decision's inputs are known to be current.

        Decisions read the shared organisation and cached aggregates without asking the
        store first; the append proves them current (the organisation's version is
        guarded, a stale aggregate collides on its next version), and a decision made
        on stale inputs is simply made again on fresh ones.
        """
        previous = self._previous_result(actor, command_id)
        if previous is not None:
            return previous
        for attempt in range(MAX_DECISION_ATTEMPTS):
            org = self.organisation(fresh=attempt > 0)
            guard = (ORGANISATION_ID, org.version)
            self._unverified().clear()
            try:
                aggregate, claims = decide()
                return self._save(
                    aggregate, actor=actor, command_id=command_id, claims=claims, guard=guard
                )
            except (GuardMovedError, _StaleCacheError):
                continue
            except DomainError:
                # A refusal decided on a cached aggregate another process may have changed
                # (another API worker advanced the deal) is decided again on the stored
                # one: it left the cache when it was taken, so the next attempt loads it.
                if attempt == MAX_DECISION_ATTEMPTS - 1 or not self._unverified():
                    raise
                continue
            finally:
                self._unverified().clear()
        raise ConcurrencyConflictError("the records kept changing while deciding; retry")

    def _load_with_organisation(
        self, aggregate_class: type[A], aggregate_id: str
    ) -> tuple[A, Organisation]:
        """The aggregate to change and the organisation, without a read of the store
        when the aggregate is cached (the append proves it current; see ``_run``)."""
        uid = _aggregate_uuid(aggregate_class, aggregate_id)
        with self._cache_lock:
            cached = self._cache.pop(uid, None)
        org = self.organisation(fresh=False)
        if cached is None or not isinstance(cached, aggregate_class):
            return self.load(aggregate_class, uid), org
        self._unverified().add(uid)
        return cached, org

    def _change(
        self,
        aggregate_class: type[A],
        aggregate_id: str,
        actor: str,
        command_id: str | None,
        act: Callable[[A, Organisation], None],
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            aggregate, org = self._load_with_organisation(aggregate_class, aggregate_id)
            self._require_may_change(aggregate, actor, org)
            act(aggregate, org)
            return aggregate, ()

        return self._run(actor, command_id, decide)

    @staticmethod
    def _require_may_change(aggregate: Aggregate, actor: str, org: Organisation) -> None:
        if org.has_role(actor, Role.AUDITOR) or not (actor == SYSTEM_ACTOR or org.is_active(actor)):
            raise NotAllowedError(f"{actor!r} may not change anything")
        if isinstance(aggregate, Opportunity) and not aggregate.may_change(actor, org):
            raise NotAllowedError("only the owner, the deal team or their superiors may change it")
        if isinstance(aggregate, Customer) and not _may_change_customer(aggregate, actor, org):
            raise NotAllowedError("only the account manager or their superiors may change it")

    def _read_visible(
        self, kind: type[A], record_id: str, what: str, actor: str, org: Organisation
    ) -> A:
        """The record a command names, if ``actor`` may see it; one they may not see and
        one that does not exist get the same UnseenRecordError (auditors and admins, who
        see everything, learn that it does not exist)."""
        try:
            record = self.read(kind, record_id)
        except NotFoundError:
            if sees_everything(actor, org):
                raise NotFoundError(f"no {what} {record_id}") from None
            raise UnseenRecordError(what) from None
        if not may_see(actor, record, org):
            raise UnseenRecordError(what)
        return record

    # The organisation.

    def set_up_organisation(self, name: str, admin_id: str, admin_name: str) -> CommandResult:
        """Found the organisation with its first admin; refused once it exists."""
        try:
            self.organisation()
        except NotFoundError:
            org = Organisation.found(name)
            org.join(admin_id, admin_name, Role.ADMIN, None, SYSTEM_ACTOR)
            return self._save(org, actor=SYSTEM_ACTOR, command_id=None)
        raise RuleViolationError("the organisation is already set up")

    def add_person(
        self,
        person_id: str,
        name: str,
        role: Role | str,
        manager_id: str | None,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.join(person_id, name, role, manager_id, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def change_role(
        self,
        person_id: str,
        role: Role | str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.change_role(person_id, role, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def change_manager(
        self,
        person_id: str,
        manager_id: str | None,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.change_manager(person_id, manager_id, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def configure(
        self, changes: dict[str, Any], reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        """Change the organisation's settings, with a reason (admins only)."""

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.configure(changes, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def remove_person(
        self, person_id: str, reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.leave(person_id, reason, actor)
            return org, ()

        return self._run(actor, command_id, decide)

    def transfer_holdings(
        self,
        person_id: str,
        successor_id: str,
        deal_ids: Sequence[str],
        customer_ids: Sequence[str],
        reason: str,
        *,
        departure: bool = False,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        """Move ``person_id``'s open deals and customers to ``successor_id`` in one
        command, one event per aggregate with the reason; with ``departure``, the person
        leaves in the same append."""
        if not reason.strip():
            raise RuleViolationError("reason: a transfer needs a reason")
        why = f"{reason} (holdings of {person_id} passed to {successor_id})"

        previous = self._previous_result(actor, command_id)
        if previous is not None:
            return previous
        for _ in range(MAX_DECISION_ATTEMPTS):
            org = self.organisation(for_change=departure)
            guard = (ORGANISATION_ID, org.version)
            changed: list[Aggregate] = []
            for deal_id in deal_ids:
                deal = self.load(Opportunity, deal_id)
                require_held(deal.owner_id, person_id, deal.title)
                deal.change_primary_owner(successor_id, why, actor, org)
                changed.append(deal)
            for customer_id in customer_ids:
                customer = self.load(Customer, customer_id)
                require_held(customer.owner_id, person_id, customer.name)
                customer.assign(successor_id, why, actor, org)
                changed.append(customer)
            if departure:
                org.leave(person_id, reason, actor)
                changed.append(org)
            if not changed:
                raise RuleViolationError(f"{person_id} holds no open deals or customers")
            try:
                return self._save_all(changed, actor=actor, command_id=command_id, guard=guard)
            except (GuardMovedError, _StaleCacheError):
                continue
        raise ConcurrencyConflictError("the records kept changing while deciding; retry")

    # API tokens: only digests are stored; the claims table maps a digest to its person.

    @property
    def token_lifetime(self) -> timedelta:
        """How long a new token works (``LEDGER_TOKEN_TTL_DAYS``, default 90 days)."""
        return timedelta(days=float(self.env.get("LEDGER_TOKEN_TTL_DAYS") or 90))

    def issue_token(
        self, person_id: str, *, actor: str, command_id: str | None = None
    ) -> tuple[str, str]:
        """A new bearer token for ``person_id``: (token_id, token). The token is shown once
        and expires after ``token_lifetime``. Issuance is not replayable: the token is
        stored only as a digest, so a repeat of the same ``command_id`` cannot show it
        again and is refused (``AlreadyIssuedError``) instead of answering with a token
        that does not work."""
        token = "sl_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        token_id = digest[:16]
        expires_at = datetime.now(UTC) + self.token_lifetime

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            org.issue_token(token_id, person_id, digest, actor, expires_at)
            return org, [(f"token:{digest}", person_id)]

        result = self._run(actor, command_id, decide)
        if result.duplicate:
            raise AlreadyIssuedError(
                "a token was already issued under this Idempotency-Key; it is shown only "
                "once: revoke it and issue another if it was lost"
            )
        return token_id, token

    def rotate_token(
        self, token_id: str, *, actor: str, command_id: str | None = None
    ) -> tuple[str, str]:
        """Replace a token: a new one for the same person (same lifetime rules) and the
        old one revoked, in one append. (token_id, token) of the new one."""
        token = "sl_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        new_id = digest[:16]
        expires_at = datetime.now(UTC) + self.token_lifetime

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            if token_id not in org.tokens:
                raise NotFoundError(f"no token {token_id}")
            person_id, old_digest, _ = org.tokens[token_id]
            org.issue_token(new_id, person_id, digest, actor, expires_at)
            org.revoke_token(token_id, f"rotated: replaced by {new_id}", actor)
            return org, [
                (f"token:{digest}", person_id),
                (f"token-revoked:{old_digest}", token_id),
            ]

        result = self._run(actor, command_id, decide)
        if result.duplicate:
            raise AlreadyIssuedError("this rotation was already made; its token is shown once")
        return new_id, token

    def revoke_token(
        self, token_id: str, reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(for_change=True)
            digest = org.tokens[token_id][1] if token_id in org.tokens else ""
            org.revoke_token(token_id, reason, actor)
            return org, [(f"token-revoked:{digest}", token_id)]

        return self._run(actor, command_id, decide)

    def authenticate(self, token: str) -> str | None:
        """The person a bearer token belongs to; None if it is unknown or revoked, or its
        person has left the organisation."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        org = self.organisation()
        # The organisation, just brought up to date, records every token issued and
        # revoked: no read of the claims table per request.
        person_id, issued_digest, revoked = org.tokens.get(digest[:16], ("", "", True))
        if revoked or not hmac.compare_digest(issued_digest, digest):
            return None
        expires_at = org.token_expiry.get(digest[:16])
        if expires_at is not None and expires_at <= datetime.now(UTC):
            return None
        return person_id if org.is_active(person_id) else None

    # Customers.

    def register_customer(
        self,
        *,
        name: str,
        source: str,
        tax_id: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        owner_id: str | None = None,
        profile: dict[str, Any] | None = None,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            named = identity_in(profile or {})
            keys = uniqueness_keys(
                name,
                tax_id or named.get("tax_id"),
                phone or named.get("phone"),
                email or named.get("email"),
                org.configuration.country_code,
            )
            customer = Customer.register(
                name=name,
                source=source,
                tax_id=tax_id,
                phone=phone,
                email=email,
                owner_id=owner_id,
                profile=profile or {},
                actor=actor,
                org=org,
                customer_id=self.subject_keys.new_subject(),
            )
            claims = [
                (self.subject_keys.claim_digest(kind, value), str(customer.id))
                for kind, value in keys.items()
            ]
            self._raise_if_claimed(claims)
            return customer, claims

        return self._run(actor, command_id, decide)

    def supplement_customer(
        self,
        customer_id: str,
        changes: dict[str, Any],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            customer, org = self._load_with_organisation(Customer, customer_id)
            self._require_may_change(customer, actor, org)
            customer.supplement_profile(changes, actor)
            named = identity_in(changes)
            keys = uniqueness_keys(
                None,
                named.get("tax_id"),
                named.get("phone"),
                named.get("email"),
                org.configuration.country_code,
            )
            claims = [
                (self.subject_keys.claim_digest(kind, value), str(customer.id))
                for kind, value in keys.items()
            ]
            self._raise_if_claimed(claims)
            return customer, claims

        return self._run(actor, command_id, decide)

    def classify_customer(
        self,
        customer_id: str,
        classification: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Customer,
            customer_id,
            actor,
            command_id,
            lambda c, _: c.classify(classification, reason, actor),
        )

    def assign_customer(
        self,
        customer_id: str,
        owner_id: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            customer = self.load(Customer, customer_id)
            customer.assign(owner_id, reason, actor, org)
            return customer, ()

        return self._run(actor, command_id, decide)

    def log_customer_activity(
        self,
        customer_id: str,
        kind: str,
        summary: str,
        opportunity_id: str | None = None,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def act(customer: Customer, org: Organisation) -> None:
            if opportunity_id is not None:
                deal = self._read_visible(
                    Opportunity, opportunity_id, "the activity's deal", actor, org
                )
                if deal.customer_id != str(customer.id):
                    raise RuleViolationError(
                        "opportunity_id: an activity names only a deal of the same customer"
                    )
            customer.log_activity(kind, summary, opportunity_id, actor)

        return self._change(Customer, customer_id, actor, command_id, act)

    def erase_customer(
        self, customer_id: str, reason: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        """Erase the customer's personal data: destroy its key, append the receipt."""
        return self._change(
            Customer, customer_id, actor, command_id, erasure(self.subject_keys, reason, actor)
        )

    # Opportunities.

    def open_opportunity(
        self,
        *,
        customer_id: str,
        owner_id: str,
        title: str,
        source: str,
        amount: Decimal,
        expected_close: date,
        product: str,
        region: str,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            self._read_visible(Customer, customer_id, "the deal's customer", actor, org)
            opportunity = Opportunity.open(
                customer_id=customer_id,
                owner_id=owner_id,
                title=title,
                source=source,
                amount=amount,
                expected_close=expected_close,
                product=product,
                region=region,
                actor=actor,
                org=org,
            )
            return opportunity, ()

        return self._run(actor, command_id, decide)

    def qualify_opportunity(
        self,
        opportunity_id: str,
        criteria: dict[str, bool],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity, opportunity_id, actor, command_id, lambda o, _: o.qualify(criteria, actor)
        )

    def disqualify_opportunity(
        self,
        opportunity_id: str,
        criteria: dict[str, bool],
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.disqualify(criteria, reason, actor),
        )

    def evaluate_opportunity(
        self,
        opportunity_id: str,
        answers: dict[str, bool],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity, opportunity_id, actor, command_id, lambda o, _: o.evaluate(answers, actor)
        )

    def advance_stage(
        self,
        opportunity_id: str,
        to_stage: int,
        reason: str | None = None,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.advance_stage(to_stage, reason, actor),
        )

    def change_primary_owner(
        self,
        opportunity_id: str,
        owner_id: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            opportunity = self.load(Opportunity, opportunity_id)
            opportunity.change_primary_owner(owner_id, reason, actor, org)
            return opportunity, ()

        return self._run(actor, command_id, decide)

    def add_team_member(
        self,
        opportunity_id: str,
        person_id: str,
        role: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, org: o.add_team_member(person_id, role, actor, org),
        )

    def remove_team_member(
        self,
        opportunity_id: str,
        person_id: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.remove_team_member(person_id, reason, actor),
        )

    def record_bid_details(
        self,
        opportunity_id: str,
        details: dict[str, Any],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.record_bid_details(details, actor),
        )

    def revise_amount(
        self,
        opportunity_id: str,
        amount: Decimal,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.revise_amount(amount, reason, actor),
        )

    def revise_close_date(
        self,
        opportunity_id: str,
        expected_close: date,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, org: o.revise_close_date(expected_close, reason, actor, org),
        )

    def log_opportunity_activity(
        self,
        opportunity_id: str,
        kind: str,
        summary: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.log_activity(kind, summary, actor),
        )

    def win_opportunity(
        self,
        opportunity_id: str,
        amount: Decimal,
        closed_on: date,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.win(amount, closed_on, actor),
        )

    def lose_opportunity(
        self,
        opportunity_id: str,
        reason: str,
        competitor: str | None,
        closed_on: date,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.lose(reason, competitor, closed_on, actor),
        )

    def reopen_opportunity(
        self,
        opportunity_id: str,
        reason: str,
        stage: int,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._change(
            Opportunity,
            opportunity_id,
            actor,
            command_id,
            lambda o, _: o.reopen(reason, stage, actor),
        )

    # Plans.

    def draft_plan(
        self,
        *,
        name: str,
        period: str,
        targets: dict[str, Decimal],
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            plan = SalesPlan.draft(name=name, period=period, targets=targets, actor=actor, org=org)
            return plan, ()

        return self._run(actor, command_id, decide)

    def decompose_plan(
        self,
        plan_id: str,
        parent: str,
        dimension: str,
        allocations: dict[str, dict[str, Decimal]],
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._plan_change(
            plan_id,
            actor,
            command_id,
            lambda p, org: p.decompose(parent, dimension, allocations, actor, org),
        )

    def revise_plan(
        self,
        plan_id: str,
        changes: dict[str, dict[str, Decimal]],
        direction: str,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        return self._plan_change(
            plan_id,
            actor,
            command_id,
            lambda p, org: p.revise(changes, direction, reason, actor, org),
        )

    def approve_plan(
        self, plan_id: str, note: str, *, actor: str, command_id: str | None = None
    ) -> CommandResult:
        return self._plan_change(
            plan_id, actor, command_id, lambda p, org: p.approve(note, actor, org)
        )

    def _plan_change(
        self,
        plan_id: str,
        actor: str,
        command_id: str | None,
        act: Callable[[SalesPlan, Organisation], None],
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            plan = self.load(SalesPlan, plan_id)
            act(plan, org)
            return plan, ()

        return self._run(actor, command_id, decide)

    # Forecasts.

    def forecast(self, person_id: str, period: str) -> Forecast:
        return self.load(Forecast, forecast_id(person_id, period))

    def submit_forecast(
        self,
        period: str,
        opportunity_ids: Sequence[str],
        *,
        categories: Mapping[str, str] | None = None,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        """Submit the actor's forecast: the deals they are primary owner of, closing in
        the period, each in a category (default: closed if won, else commit), plus the
        figures in force of their direct reports' forecasts."""
        chosen = dict(categories or {})
        unknown = set(chosen) - set(opportunity_ids)
        if unknown:
            raise RuleViolationError("categories: name only deals of opportunity_ids")

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            lines = [
                forecast_line(
                    self._read_visible(Opportunity, deal, "a forecast deal", actor, org),
                    actor,
                    period,
                    chosen.get(deal),
                )
                for deal in opportunity_ids
            ]
            team: dict[str, Decimal] = {}
            for report in org.direct_reports(actor):
                try:
                    team[report] = self.forecast(report, period).figure(org)
                except NotFoundError:
                    continue
            forecast = self._forecast_or_new(actor, period, actor)
            forecast.submit(lines, team, actor, org)
            return forecast, ()

        return self._run(actor, command_id, decide)

    def _forecast_or_new(self, person_id: str, period: str, actor: str) -> Forecast:
        try:
            return self.forecast(person_id, period)
        except NotFoundError:
            return Forecast.open(person_id, period, actor)

    def set_quota(
        self,
        person_id: str,
        period: str,
        amount: Decimal,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        """Set a person's quota for a period (a superior of theirs or an admin)."""

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            require_visible_people(actor, {person_id}, org)
            org.person(person_id)
            forecast = self._forecast_or_new(person_id, period, actor)
            forecast.set_quota(amount, reason, actor, org)
            return forecast, ()

        return self._run(actor, command_id, decide)

    def revise_forecast(
        self,
        person_id: str,
        period: str,
        adjusted_total: Decimal,
        reason: str,
        *,
        actor: str,
        command_id: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            org = self.organisation(fresh=False)
            require_visible_people(actor, {person_id}, org)
            try:
                forecast = self.forecast(person_id, period)
            except NotFoundError:
                raise RuleViolationError(
                    f"{person_id} has not submitted a forecast for {period}; a forecast is "
                    "revised after it is submitted"
                ) from None
            forecast.revise(adjusted_total, reason, actor, org)
            return forecast, ()

        return self._run(actor, command_id, decide)

    # The audit log of bulk reads and exports.

    def record_export(
        self, actor: str, what: str, parameters: dict[str, Any], day: date
    ) -> CommandResult:
        """Append an ``ExportRecorded`` to ``actor``'s audit log of ``day``.

        The log is kept in the aggregate cache like any other, so a warm append reads
        nothing first: it is one append at the cached version (a stale cache collides and
        is reloaded). It needs no organisation guard: recording a read decides nothing.
        """
        log_id = audit_log_id(actor, day)
        for attempt in range(EXPORT_RECORD_ATTEMPTS):
            self._unverified().clear()
            try:
                log = self._cached_or_loaded(AuditLog, log_id)
                if log is None:
                    log = AuditLog.open(actor, day)
                log.record_export(what, parameters)
                return self._save(log, actor=actor, command_id=None)
            except (_StaleCacheError, ConcurrencyConflictError):
                if attempt == EXPORT_RECORD_ATTEMPTS - 1:
                    raise
            finally:
                self._unverified().clear()
        raise AssertionError("unreachable")

    def _cached_or_loaded(self, aggregate_class: type[A], uid: UUID) -> A | None:
        """The aggregate to change, from the cache unverified (see ``_run``) or loaded;
        None if it does not exist."""
        with self._cache_lock:
            cached = self._cache.pop(uid, None)
        if isinstance(cached, aggregate_class):
            self._unverified().add(uid)
            return cached
        try:
            return self.load(aggregate_class, uid)
        except NotFoundError:
            return None


def _may_change_customer(customer: Customer, actor: str, org: Organisation) -> bool:
    if org.has_role(actor, Role.ADMIN) or actor == customer.owner_id:
        return True
    if customer.owner_id is None:
        return org.has_role(actor, Role.MANAGER, Role.SALES_REP)
    return org.is_superior(actor, customer.owner_id)
