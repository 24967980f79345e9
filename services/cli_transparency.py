"""``salesledger audit``: public key, signed heads, proofs, bundles, offline check, key
rotation, witness."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any
from uuid import UUID

from services.bootstrap import build_ledger
from services.settings import Settings
from services.transparency import offline
from services.transparency.bundle import (
    NotInTreeError,
    consistency_between,
    export_bundle,
    head_at,
    inclusion_by_position,
)
from services.transparency.keys import (
    SigningKeyError,
    create_signing_key,
    current_public_key_pem,
    load_signing_key,
    rotate_key,
)
from services.transparency.store import TreeStore, tree_store_for
from services.transparency.witness import Witness, WitnessRefusedError


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="signed tree heads, proofs and offline checks")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    commands.add_parser("public-key", help="print the ledger's current public key (PEM)"
                        ).set_defaults(handler=_public_key)
    head = commands.add_parser("head", help="print a signed tree head (JSON) to keep")
    head.add_argument("--size", type=int, default=None, help="default: the latest")
    head.set_defaults(handler=_head)
    inclusion = commands.add_parser("inclusion", help="inclusion proof of an event")
    inclusion.add_argument("--position", type=int, required=True)
    inclusion.add_argument("--size", type=int, default=None, help="head size (default latest)")
    inclusion.set_defaults(handler=_inclusion)
    consistency = commands.add_parser("consistency", help="consistency proof between heads")
    consistency.add_argument("--from-size", type=int, required=True)
    consistency.add_argument("--to-size", type=int, default=None)
    consistency.set_defaults(handler=_consistency)
    export = commands.add_parser("export", help="write a deal's audit bundle")
    export.add_argument("aggregate_id", type=UUID)
    export.add_argument("--kept-head", type=Path, action="append", default=[],
                        help="a head the auditor kept: add a consistency proof from it")
    export.add_argument("-o", "--output", type=Path, default=None, help="default: stdout")
    export.set_defaults(handler=_export)
    check = commands.add_parser("check", help="verify a bundle offline (no database)")
    check.add_argument("bundle", type=Path)
    check.add_argument("--public-key", type=Path, required=True)
    check.add_argument("--kept-head", type=Path, default=None)
    check.set_defaults(handler=_check)
    rotate = commands.add_parser("rotate-key", help="make a new signing key, endorsed by the old")
    rotate.add_argument("new_key_file", type=Path, help="where to write the new key (0600)")
    rotate.set_defaults(handler=_rotate)
    witness = commands.add_parser("witness", help="cosign the latest head if it extends the last")
    witness.add_argument("--key", type=Path, required=True, help="the witness's own PEM key")
    witness.add_argument("--state", type=Path, required=True, help="file keeping the last head")
    witness.set_defaults(handler=_witness)


@contextmanager
def _tree() -> Iterator[tuple[Any, TreeStore]]:
    ledger = build_ledger(Settings())
    try:
        yield ledger, tree_store_for(ledger.recorder)
    finally:
        ledger.close()


def _answer(produce: Callable[[], Any]) -> int:
    try:
        result = produce()
    except (NotInTreeError, SigningKeyError, WitnessRefusedError, offline.ProofError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0


def _public_key(args: argparse.Namespace) -> int:
    with _tree() as (_, tree):
        pem = current_public_key_pem(tree)
    if pem is None:
        print("error: the ledger has no signing key yet: run `salesledger init`", file=sys.stderr)
        return 1
    print(pem, end="")
    return 0


def _head(args: argparse.Namespace) -> int:
    with _tree() as (_, tree):
        return _answer(lambda: asdict(head_at(tree, args.size)))


def _inclusion(args: argparse.Namespace) -> int:
    with _tree() as (_, tree):
        return _answer(lambda: inclusion_by_position(tree, args.position, args.size))


def _consistency(args: argparse.Namespace) -> int:
    with _tree() as (_, tree):
        return _answer(lambda: consistency_between(tree, args.from_size, args.to_size))


def _export(args: argparse.Namespace) -> int:
    kept = [_read_head(path).tree_size for path in args.kept_head]
    with _tree() as (ledger, tree):
        try:
            bundle = export_bundle(ledger.recorder, tree, args.aggregate_id, kept)
        except NotInTreeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    text = json.dumps(bundle, indent=2)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"{len(bundle['events'])} events against the head of size "
              f"{bundle['head']['tree_size']} written to {args.output}")
    return 0


def _read_head(path: Path) -> offline.SignedTreeHead:
    return offline.SignedTreeHead.from_json(json.loads(path.read_text(encoding="utf-8")))


def _check(args: argparse.Namespace) -> int:
    try:
        check = offline.check_bundle_files(args.bundle, args.public_key, args.kept_head)
    except (OSError, ValueError) as error:
        print(f"REJECTED: cannot read the inputs: {error}")
        return 1
    print(offline.describe(check))
    return 0 if check.ok else 1


def _rotate(args: argparse.Namespace) -> int:
    settings = Settings()
    with _tree() as (_, tree):
        try:
            old = load_signing_key(Path(settings.signing_key_file))
            new = create_signing_key(args.new_key_file)
            rotation = rotate_key(tree, old, new)
        except SigningKeyError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(f"key {rotation.new_key_id} replaces {rotation.previous_key_id} (signed by it); "
          f"set LEDGER_SIGNING_KEY_FILE={args.new_key_file} for every sealer")
    return 0


def _witness(args: argparse.Namespace) -> int:
    with _tree() as (_, tree):
        witness = Witness(load_signing_key(args.key), args.state, tree.signing_keys())

        def cosign() -> str:
            head, cosignature = witness.cosign_latest(tree)
            return (f"cosigned the head of size {head.tree_size} as witness "
                    f"{cosignature.witness_key_id}")

        return _answer(cosign)
