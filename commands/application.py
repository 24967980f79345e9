"""The application service's core: load an aggregate, let it decide, save its events.

Every command of ``commands/`` runs through ``LedgerApplication._run``: the decision is
made on the shared organisation and (when cached) the aggregate without reading the store,
and the append proves them current — the organisation's version is guarded and a stale
aggregate collides on its next version — or the decision is made again on fresh inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper

from aggregates.customer import Customer
from aggregates.errors import (
    ConcurrencyConflictError,
    DomainError,
    DuplicateCustomerError,
    NotFoundError,
)
from aggregates.organisation import ORGANISATION_ID, Organisation
from aggregates.permissions import require_may_change
from aggregates.visibility import UnseenRecordError, may_see, sees_everything
from commands.aggregate_cache import (
    DEFAULT_CACHE_SIZE,
    AggregateCache,
    SharedOrganisation,
    StaleCacheError,
)
from commands.claims import (
    claim_for_command,
    command_fingerprint,
    command_outcome,
    command_outcome_value,
)
from commands.concurrency import GuardMovedError, LedgerRecorder
from commands.event_boundary import CheckedMapper as CheckedMapper  # (re-exported)
from commands.personal_data import (
    InMemorySubjectKeys,
    PersonalDataTranscoding,
    SubjectKeys,
    subject_keys_of,
)
from commands.preconditions import IdempotencyKeyReusedError, PreconditionFailedError, expected
from commands.snapshots import LedgerSnapshot, Snapshotter
from events.base import DateAsISO

A = TypeVar("A", bound=Aggregate)

Decision = Callable[[], tuple[Aggregate, Sequence[tuple[str, str]]]]
"""Decide a command: the aggregate with its new events, and the claims to store with them."""


@dataclass(frozen=True)
class CommandResult:
    """What a command did: the aggregate it touched, its new version, and the
    global position of its last event (for read-your-writes)."""

    aggregate_id: str
    version: int
    position: int | None
    duplicate: bool = False


MAX_DECISION_ATTEMPTS = 3


def aggregate_uuid(aggregate_class: type[Aggregate], aggregate_id: UUID | str) -> UUID:
    """The id as a UUID; a malformed one names no aggregate (NotFoundError)."""
    if isinstance(aggregate_id, UUID):
        return aggregate_id
    try:
        return UUID(str(aggregate_id))
    except ValueError:
        raise NotFoundError(f"no {aggregate_class.__name__.lower()} {aggregate_id}") from None


class LedgerApplication(Application[UUID]):
    """Load → decide → save, shared by every area's commands (``commands.ledger``)."""

    name = "SalesLedger"
    is_snapshotting_enabled = True
    snapshot_class = LedgerSnapshot

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        cache_size = int(self.env.get("LEDGER_AGGREGATE_CACHE_SIZE") or DEFAULT_CACHE_SIZE)
        self._cache = AggregateCache(cache_size)
        self._shared = SharedOrganisation(
            self._stored_organisation, lambda version: self.stored_events(ORGANISATION_ID, version)
        )
        self._snapshotter = Snapshotter(self, never=(Customer,))

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

    # Loading.

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
        uid = aggregate_uuid(aggregate_class, aggregate_id)
        aggregate: Any = None
        if version is None:
            aggregate = self._cache.take(uid)
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
        uid = aggregate_uuid(aggregate_class, aggregate_id)
        private = self._cache.copy_of(uid, aggregate_class)
        if private is None:
            loaded = self.load(aggregate_class, uid)
            self._cache.keep_if_absent(copy.deepcopy(loaded))  # the next read starts from it
            return loaded
        for event in self.stored_events(uid, gt=private.version):
            event.mutate(private)
        return private

    def load_as_of(self, aggregate_class: type[A], aggregate_id: UUID | str, moment: datetime) -> A:
        """The aggregate as it was at ``moment``, from its events alone."""
        uid = aggregate_uuid(aggregate_class, aggregate_id)
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

    def organisation(
        self, *, for_change: bool = False, fresh: bool = True, since: float | None = None
    ) -> Organisation:
        """The organisation. Without ``for_change`` it is a shared object: read it, never
        change it. ``fresh=False`` skips bringing it up to date — for decisions, whose
        append is then guarded by the organisation's version (see ``_run``). ``since``: a
        ``time.monotonic`` moment after which a look at the store is fresh enough
        (``SharedOrganisation.get``)."""
        if for_change:
            try:
                return self.load(Organisation, ORGANISATION_ID)
            except NotFoundError:
                raise NotFoundError(
                    "the organisation is not set up; run `salesledger init`"
                ) from None
        return self._shared.get(fresh=fresh, since=since)

    def _stored_organisation(self) -> Organisation:
        try:
            org: Organisation = self.repository.get(ORGANISATION_ID)
        except AggregateNotFoundError:
            raise NotFoundError("the organisation is not set up; run `salesledger init`") from None
        return org

    def _load_with_organisation(
        self, aggregate_class: type[A], aggregate_id: str
    ) -> tuple[A, Organisation]:
        """The aggregate to change and the organisation, without a read of the store
        when the aggregate is cached (the append proves it current; see ``_run``)."""
        uid = aggregate_uuid(aggregate_class, aggregate_id)
        cached = self._cache.take(uid)
        org = self.organisation(fresh=False)
        if cached is None or not isinstance(cached, aggregate_class):
            return self.load(aggregate_class, uid), org
        self._cache.unverified().add(uid)
        return cached, org

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

    # Deciding.

    def _run(self, actor: str, command_id: str | None, decide: Decision) -> CommandResult:
        """Decide and save, once the decision's inputs are known to be current.

        Decisions read the shared organisation and cached aggregates without asking the
        store first; the append proves them current (the organisation's version is
        guarded, a stale aggregate collides on its next version), and a decision made
        on stale inputs is simply made again on fresh ones.
        """
        previous = self._previous_result(actor, command_id)
        if previous is not None:
            return previous
        unverified = self._cache.unverified()
        for attempt in range(MAX_DECISION_ATTEMPTS):
            org = self.organisation(fresh=attempt > 0)
            guard = (ORGANISATION_ID, org.version)
            unverified.clear()
            try:
                aggregate, claims = decide()
                return self._save(
                    aggregate, actor=actor, command_id=command_id, claims=claims, guard=guard
                )
            except (GuardMovedError, StaleCacheError):
                continue
            except DomainError:
                # A refusal decided on a cached aggregate another process may have changed
                # (another API worker advanced the deal) is decided again on the stored
                # one: it left the cache when it was taken, so the next attempt loads it.
                if attempt == MAX_DECISION_ATTEMPTS - 1 or not unverified:
                    raise
                continue
            finally:
                unverified.clear()
        raise ConcurrencyConflictError("the records kept changing while deciding; retry")

    def _change(
        self,
        aggregate_class: type[A],
        aggregate_id: str,
        actor: str,
        command_id: str | None,
        act: Callable[[A, Organisation], None],
    ) -> CommandResult:
        """The common command: load the record, check the actor may change it, ``act``."""

        def decide() -> tuple[Aggregate, Sequence[tuple[str, str]]]:
            aggregate, org = self._load_with_organisation(aggregate_class, aggregate_id)
            require_may_change(aggregate, actor, org)
            act(aggregate, org)
            return aggregate, ()

        return self._run(actor, command_id, decide)

    # Saving.

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
            all_claims.append(
                (
                    claim_for_command(actor, command_id),
                    command_outcome_value(aggregate.id, aggregate.version, expected().fingerprint),
                )
            )
        try:
            positions = self._append(aggregate, claims=all_claims, guard=guard)
        except IntegrityError:
            previous = self._previous_result(actor, command_id)
            if previous is not None:
                return previous
            self._raise_if_claimed(claims)
            if aggregate.id in self._cache.unverified():
                raise StaleCacheError from None
            raise ConcurrencyConflictError(
                f"{type(aggregate).__name__.lower()} {aggregate.id} was changed by someone "
                "else at the same time; reload and retry"
            ) from None
        self._kept(aggregate)
        return CommandResult(
            str(aggregate.id), aggregate.version, positions[-1] if positions else None
        )

    def _kept(self, aggregate: Aggregate) -> None:
        """Cache a saved aggregate (and share a saved organisation)."""
        self._cache.keep(aggregate)
        if isinstance(aggregate, Organisation):
            self._shared.saved(aggregate)

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

    def _check_expected_version(self, aggregate: Aggregate) -> None:
        """Refuse the change unless the aggregate was at the version the caller expects
        (a stale cached copy is loaded again rather than refused)."""
        wanted = expected().versions
        if wanted is None:
            return
        current = aggregate.version - len(aggregate.pending_events)
        if current not in wanted:
            if aggregate.id in self._cache.unverified():
                raise StaleCacheError
            raise PreconditionFailedError(wanted, current)

    def _raise_if_claimed(self, claims: Sequence[tuple[str, str]]) -> None:
        taken = self.store.select_claims([key for key, _ in claims])
        for key, _ in claims:
            if key in taken:
                matched_on = key.split(":")[1]
                raise DuplicateCustomerError(taken[key], matched_on)

    # Idempotency: a command's outcome is claimed under its id, in the same append.

    def _previous_result(self, actor: str, command_id: str | None) -> CommandResult | None:
        """The result of the command first recorded with ``command_id``; refused when the
        request now is not the one the key was first used with (its fingerprint)."""
        if not command_id:
            return None
        value = self.store.select_claims([claim_for_command(actor, command_id)])
        if not value:
            return None
        recorded = next(iter(value.values()))
        fingerprint, now = command_fingerprint(recorded), expected().fingerprint
        if fingerprint and now is not None and fingerprint != now:
            raise IdempotencyKeyReusedError()
        aggregate_id, version = command_outcome(recorded)
        position = self._position_of(str(aggregate_id), version)
        return CommandResult(str(aggregate_id), version, position, duplicate=True)

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
