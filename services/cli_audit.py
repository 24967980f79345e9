"""Integrity subcommands: init-db, seal, verify, digest."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any
from uuid import UUID

from services.bootstrap import (
    EVENTS_CHANNEL,
    UNREACHABLE_ERRORS,
    build_ledger,
    until_reachable,
)
from services.database import Database
from services.integrity import (
    ChainVerifier,
    Digest,
    Sealer,
    VerificationReport,
    check_digest,
    issue_digest,
    signer_from_settings,
)
from services.schema_admin import init_db
from services.settings import Settings
from services.worker_health import report_health


def register(subparsers: Any) -> None:
    init = subparsers.add_parser(
        "init-db", help="create the tables, append-only triggers and the application role"
    )
    init.add_argument("--app-role", default="ledger_app", help="PostgreSQL role the app uses")
    init.add_argument("--app-password", default=None, help="set (or reset) its password")
    init.set_defaults(handler=_init_db)

    seal = subparsers.add_parser("seal", help="extend the ledger-wide hash chain over new events")
    seal.add_argument(
        "--follow",
        action="store_true",
        help="keep sealing new events as they arrive (the sealing worker), until interrupted",
    )
    seal.add_argument("--interval", type=float, default=1.0, help="seconds between seals")
    seal.set_defaults(handler=_seal)

    verify = subparsers.add_parser(
        "verify", help="recompute every hash; exit 1 and show the first break if any"
    )
    verify.add_argument("--from", dest="start", type=int, default=1, help="first position")
    verify.add_argument("--to", dest="stop", type=int, default=None, help="last position")
    verify.add_argument("--aggregate", default=None, help="verify one aggregate's chain")
    verify.add_argument("--digest", default=None, help="a stored digest (JSON file) to check")
    verify.add_argument(
        "--kafka", action="store_true",
        help="also check the published Kafka messages up to the digest's position",
    )
    verify.set_defaults(handler=_verify)

    digest = subparsers.add_parser("digest", help="print a signed digest of the ledger")
    digest.add_argument("--position", type=int, default=None)
    digest.set_defaults(handler=_digest)


def _init_db(args: argparse.Namespace) -> int:
    result = init_db(Settings(), app_role=args.app_role, app_password=args.app_password)
    print(f"{result.store}: tables {', '.join(result.tables)} are append-only")
    if result.app_role:
        print(f"application role {result.app_role!r} may insert and select them, never change them")
    return 0


def _seal(args: argparse.Namespace) -> int:
    settings = Settings()
    ledger = until_reachable(lambda: build_ledger(settings), "the event store")
    sealer = Sealer(ledger.recorder)  # type: ignore[arg-type]
    position = until_reachable(sealer.seal, "the event store")
    print(f"sealed up to position {position}", flush=True)
    if not args.follow:
        return 0
    database = Database(settings)
    sealed_upto = [position]
    health = report_health(settings.health_file, "seal", lambda: sealed_upto[0])
    try:
        while True:
            try:
                database.wait_for_notify(EVENTS_CHANNEL, args.interval)
                sealed = sealer.seal()
            except UNREACHABLE_ERRORS as error:  # waited out, like the other workers
                print(f"sealing paused: the database is unreachable ({error})", flush=True)
                time.sleep(args.interval)
                continue
            sealed_upto[0] = sealed
            if sealed != position:
                position = sealed
                print(f"sealed up to position {position}", flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        health.stop()
        database.close()


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


def _verify(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    store: Any = ledger.recorder
    verifier = ChainVerifier(store)
    if args.aggregate:
        report = verifier.verify_aggregate(UUID(args.aggregate))
    else:
        report = verifier.verify_range(args.start, args.stop)
    _print_report(report)
    status = 0 if report.ok else 1
    if args.digest:
        with open(args.digest, encoding="utf-8") as file:
            digest = Digest(**json.load(file))
        check = check_digest(store, signer_from_settings(), digest)
        print(f"digest at position {digest.position}: {check.reason}")
        if not (check.authentic and check.unchanged):
            status = 1
        if args.kafka and check.authentic:
            from services.kafka_verify import verify_published

            kafka = verify_published(ledger, digest.position)
            print(kafka.summary())
            if not kafka.ok:
                status = 1
    return status


def _digest(args: argparse.Namespace) -> int:
    ledger = build_ledger()
    try:
        digest = issue_digest(ledger.recorder, signer_from_settings(), args.position)  # type: ignore[arg-type]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(digest), indent=2))
    return 0
