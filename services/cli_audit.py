"""Integrity subcommands: init-db, seal, verify (``audit`` is in cli_transparency)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from services.bootstrap import (
    EVENTS_CHANNEL,
    UNREACHABLE_ERRORS,
    build_ledger,
    until_reachable,
)
from services.claims_audit import audit_claims
from services.database import Database
from services.integrity import ChainVerifier, VerificationReport
from services.parallel_verification import PARALLEL_FROM, verify_spread
from services.schema_admin import init_db
from services.settings import Settings
from services.transparency.keys import (
    SigningKeyError,
    create_signing_key,
    load_signing_key,
    register_first_key,
)
from services.transparency.offline import SignedTreeHead
from services.transparency.store import tree_store_for
from services.transparency.tree import SigningKeyMismatchError, TreeSealer
from services.worker_health import report_health


def register(subparsers: Any) -> None:
    init = subparsers.add_parser(
        "init-db", help="create the tables, append-only triggers and the application role"
    )
    init.add_argument("--app-role", default="ledger_app", help="PostgreSQL role the app uses")
    init.add_argument("--app-password", default=None, help="set (or reset) its password")
    init.set_defaults(handler=_init_db)

    seal = subparsers.add_parser(
        "seal", help="seal new events: extend the chain and the Merkle tree, sign a tree head"
    )
    seal.add_argument(
        "--follow",
        action="store_true",
        help="keep sealing new events as they arrive (the sealing worker), until interrupted",
    )
    seal.add_argument("--interval", type=float, default=1.0, help="seconds between seals")
    seal.add_argument(
        "--checkpoints", action="store_true",
        help="also publish each signed head on Kafka's PREFIX.checkpoints topic",
    )
    seal.set_defaults(handler=_seal)

    verify = subparsers.add_parser(
        "verify",
        help="recompute every hash and derive every claim from the events; "
        "exit 1 and show the first break if any",
    )
    verify.add_argument("--from", dest="start", type=int, default=1, help="first position")
    verify.add_argument("--to", dest="stop", type=int, default=None, help="last position")
    verify.add_argument("--aggregate", default=None, help="verify one aggregate's chain")
    verify.add_argument(
        "--jobs", type=int, default=None,
        help="processes a long range is spread over (default: one per CPU, at most 2; "
        f"ranges under {PARALLEL_FROM:,} positions use one)",
    )
    verify.add_argument(
        "--kafka", action="store_true",
        help="also check the published Kafka messages up to the latest signed head",
    )
    verify.set_defaults(handler=_verify)


def _init_db(args: argparse.Namespace) -> int:
    result = init_db(Settings(), app_role=args.app_role, app_password=args.app_password)
    print(f"{result.store}: tables {', '.join(result.tables)} are append-only")
    if result.app_role:
        print(f"application role {result.app_role!r} may insert and select them, never change them")
    return 0


def init_signing_key(ledger: Any, settings: Settings) -> int:
    """Part of ``salesledger init``: make the signing key file (mode 0600) unless it
    exists, and register it as the ledger's first key."""
    path = Path(settings.signing_key_file)
    try:
        key = load_signing_key(path) if path.exists() else create_signing_key(path)
    except SigningKeyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    current = register_first_key(tree_store_for(ledger.recorder), key)
    print(f"signing key {path} (mode 0600); the ledger's current key is {current.new_key_id}")
    print(current.new_public_key, end="")
    return 0


def _seal(args: argparse.Namespace) -> int:
    settings = Settings()
    ledger = until_reachable(lambda: build_ledger(settings), "the event store")
    try:
        tree = tree_store_for(ledger.recorder)
        key = load_signing_key(Path(settings.signing_key_file))
        register_first_key(tree, key)
        sealer = TreeSealer(ledger.recorder, tree, key)  # type: ignore[arg-type]
        head = until_reachable(sealer.seal, "the event store")
    except (SigningKeyError, SigningKeyMismatchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    publish = _checkpoint_publisher(settings) if args.checkpoints else None
    _print_head(head, publish)
    if not args.follow:
        return 0
    database = Database(settings)
    sealed_upto = [head.last_position if head is not None else 0]
    health = report_health(settings.health_file, "seal", lambda: sealed_upto[0])
    try:
        while True:
            try:
                database.wait_for_notify(EVENTS_CHANNEL, args.interval)
                latest = sealer.seal()
            except UNREACHABLE_ERRORS as error:  # waited out, like the other workers
                print(f"sealing paused: the database is unreachable ({error})", flush=True)
                time.sleep(args.interval)
                continue
            if latest is not None:
                sealed_upto[0] = latest.last_position
            if latest is not None and (head is None or latest.tree_size != head.tree_size):
                head = latest
                _print_head(head, publish)
    except KeyboardInterrupt:
        return 0
    finally:
        health.stop()
        database.close()


def _checkpoint_publisher(settings: Settings) -> Callable[[SignedTreeHead], None]:
    from services.transparency.kafka import CheckpointPublisher

    publisher = CheckpointPublisher(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix)
    return publisher.publish


def _print_head(
    head: SignedTreeHead | None, publish: Callable[[SignedTreeHead], None] | None = None
) -> None:
    if head is None:
        print("nothing to seal yet", flush=True)
    else:
        if publish is not None:
            publish(head)
        print(f"signed tree head: size {head.tree_size}, up to position {head.last_position}, "
              f"root {head.root}", flush=True)


def _print_report(report: VerificationReport) -> None:
    print(
        f"checked {report.events} events "
        f"(positions {report.first_position}..{report.last_position}), "
        f"sealed up to {report.sealed_upto}"
    )
    first = report.first_break
    if first is None:
        print("ok: every hash and link matches")
    else:
        print(f"BROKEN: {first}")
        if len(report.breaks) > 1:
            print(f"({len(report.breaks) - 1} further breaks after it)")


def erasure_summary(erased: list[str], aggregate: str | None = None) -> str:
    """What ``verify`` says of erasures: erased is not tampered (the chains hash the
    ciphertext, which is still there; only the keys that read it are gone)."""
    if aggregate is not None:
        if aggregate in erased:
            return (
                "erased: this customer's personal data (its key is destroyed; "
                "its events verify as stored)"
            )
        return "erased: none for this aggregate"
    if not erased:
        return "erased: none"
    return (
        f"erased: the personal data of {len(erased)} customer(s) (keys destroyed; "
        f"their events verify as stored): {', '.join(erased)}"
    )


def _verify(args: argparse.Namespace) -> int:
    settings = Settings()
    ledger = build_ledger(settings)
    store: Any = ledger.recorder
    if args.aggregate:
        report = ChainVerifier(store).verify_aggregate(UUID(args.aggregate))
    else:
        report = verify_spread(settings, store, args.start, args.stop, jobs=args.jobs)
    _print_report(report)
    print(erasure_summary(ledger.subject_keys.store.erased_subjects(), args.aggregate))
    status = 0 if report.ok else 1
    if not args.aggregate and args.start == 1 and args.stop is None:
        claims = audit_claims(ledger)
        print(f"claims: {claims.summary()}")
        if not claims.ok:
            status = 1
    else:
        print("claims: not checked (they are checked when the whole ledger is verified)")
    if args.kafka:
        from services.kafka_verify import verify_published

        head = tree_store_for(store).latest_head()
        upto = head.last_position if head else 0
        kafka = verify_published(ledger, upto)
        print(kafka.summary())
        if not kafka.ok:
            status = 1
    return status
