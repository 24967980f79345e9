"""The Merkle tree kept by the sealer, its signed heads and proofs, and audit bundles
checked offline — on SQLite and PostgreSQL, with the stored rows tampered with below the
application (the append-only triggers bypassed as in ``test_integrity_tamper``)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.cli import main
from services.settings import Settings
from services.transparency import offline
from services.transparency.bundle import consistency_between, export_bundle, inclusion_by_position
from services.transparency.keys import create_signing_key, register_first_key, rotate_key
from services.transparency.store import TREE_TABLES, TreeStore, tree_store_for
from services.transparency.tree import TreeProofs, TreeSealer
from services.transparency.witness import Witness, WitnessRefusedError
from tests.integration.test_integrity_tamper import TamperedStore


class SignedLedger:
    """A tampered-store ledger with a signing key, sealed into a signed tree."""

    def __init__(self, settings: Settings, key_path: Path) -> None:
        self.store = TamperedStore(settings)
        self.key = create_signing_key(key_path)
        self.tree: TreeStore = tree_store_for(self.store.ledger.recorder)
        register_first_key(self.tree, self.key)
        self.sealer = TreeSealer(self.store.ledger.recorder, self.tree, self.key)  # type: ignore[arg-type]
        self.public_key = self.key.public_key()

    def seal(self) -> offline.SignedTreeHead:
        self.store.wait_for_horizon()
        head = self.sealer.seal()
        assert head is not None
        return head

    def bundle(self, deal: str, kept: tuple[int, ...] = ()) -> dict[str, Any]:
        return export_bundle(self.store.ledger.recorder, self.tree, UUID(deal), kept)  # type: ignore[arg-type]

    def check(
        self, bundle: dict[str, Any], kept: offline.SignedTreeHead | None = None
    ) -> offline.BundleCheck:
        return offline.check_bundle(json.loads(json.dumps(bundle)), self.public_key, kept)

    def wipe_tree(self) -> None:
        """What an operator with database access and the key would do to rewrite history."""
        for table in (*TREE_TABLES[:3], "ledger_seals"):
            if self.store.settings.store == "sqlite":
                for operation in ("update", "delete"):
                    self.store.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}", ())
            self.store.execute(f"DELETE FROM {table}", ())


@pytest.fixture
def signed(store_settings: Settings, tmp_path: Path) -> Iterator[SignedLedger]:
    ledger = SignedLedger(store_settings, tmp_path / "signing-key.pem")
    yield ledger
    ledger.store.ledger.close()


def _event_hashes(signed: SignedLedger) -> list[bytes]:
    records = signed.store.ledger.recorder.select_chained(0, 2**62, 100_000)  # type: ignore[attr-defined]
    return [r.hash for r in records]


def test_the_signed_head_covers_every_sealed_event_and_every_proof_verifies(
    signed: SignedLedger,
) -> None:
    head = signed.seal()
    hashes = _event_hashes(signed)
    assert head.tree_size == len(hashes)
    assert head.root_bytes == offline.tree_hash(hashes)
    offline.verify_head(head, {offline.key_id(signed.public_key): signed.public_key})
    records = signed.store.ledger.recorder.select_chained(0, 2**62, 100_000)  # type: ignore[attr-defined]
    for leaf_index, record in enumerate(records):
        answer = inclusion_by_position(signed.tree, record.position)
        assert answer["leaf_index"] == leaf_index
        proof = [bytes.fromhex(p) for p in answer["inclusion_proof"]]
        offline.verify_inclusion(leaf_index, head.tree_size, offline.leaf_hash(record.hash),
                                 proof, head.root_bytes)


def test_later_heads_are_consistent_with_earlier_ones(signed: SignedLedger) -> None:
    first = signed.seal()
    for i in range(3):
        signed.store.ledger.log_opportunity_activity(
            signed.store.deals[0], "call", f"later {i}", actor="rep1"
        )
    second = signed.seal()
    assert second.tree_size == first.tree_size + 3
    assert second.root_bytes == offline.tree_hash(_event_hashes(signed))
    answer = consistency_between(signed.tree, first.tree_size, None)
    offline.verify_consistency(first.tree_size, second.tree_size, first.root_bytes,
                               second.root_bytes, [bytes.fromhex(p) for p in answer["proof"]])
    for old in range(1, second.tree_size):
        proof = TreeProofs(signed.tree).consistency(old, second.tree_size)
        old_root = offline.tree_hash(_event_hashes(signed)[:old])
        offline.verify_consistency(old, second.tree_size, old_root, second.root_bytes, proof)


def test_an_untouched_bundle_checks_offline(signed: SignedLedger) -> None:
    kept = signed.seal()
    signed.store.ledger.log_opportunity_activity(signed.store.deals[0], "call", "x", actor="rep1")
    head = signed.seal()
    bundle = signed.bundle(signed.store.deals[0], kept=(kept.tree_size,))
    check = signed.check(bundle, kept)
    assert check.ok, check.problems
    assert (check.events, check.tree_size) == (4, head.tree_size)


def _rejected(check: offline.BundleCheck, reason: str) -> None:
    assert not check.ok
    assert reason in " ".join(check.problems), check.problems


def test_a_flipped_byte_in_the_store_is_rejected(signed: SignedLedger) -> None:
    signed.seal()
    position = signed.store.position_of(signed.store.deals[0], 2)
    column = "notification_id" if signed.store.settings.store == "postgres" else "rowid"
    signed.store.execute(
        f"UPDATE {{table}} SET state = %s WHERE {column} = %s", (b'{"x":1}', position)
    )
    _rejected(signed.check(signed.bundle(signed.store.deals[0])),
              f"version 2 (position {position}): its content does not match its hash")


def test_a_deleted_event_is_rejected(signed: SignedLedger) -> None:
    signed.seal()
    position = signed.store.position_of(signed.store.deals[0], 2)
    column = "notification_id" if signed.store.settings.store == "postgres" else "rowid"
    signed.store.execute(f"DELETE FROM {{table}} WHERE {column} = %s", (position,))
    _rejected(signed.check(signed.bundle(signed.store.deals[0])), "expected version 2")


def test_reordered_and_forged_events_are_rejected(signed: SignedLedger) -> None:
    signed.seal()
    bundle = signed.bundle(signed.store.deals[0])
    swapped = copy.deepcopy(bundle)
    swapped["events"][1], swapped["events"][2] = swapped["events"][2], swapped["events"][1]
    _rejected(signed.check(swapped), "expected version 2")
    moved = copy.deepcopy(bundle)
    moved["events"][1]["leaf_index"], moved["events"][2]["leaf_index"] = (
        moved["events"][2]["leaf_index"], moved["events"][1]["leaf_index"])
    _rejected(signed.check(moved), "version 2 (position")
    _rejected(signed.check(moved), "not in the signed tree")
    forged = copy.deepcopy(bundle)
    last = forged["events"][-1]
    state = b'{"forged":true}'
    forged_hash = offline.event_hash(bytes.fromhex(last["hash"]), UUID(signed.store.deals[0]),
                                     last["version"] + 1, last["topic"], state)
    forged["events"].append({**last, "version": last["version"] + 1,
                             "leaf_index": last["leaf_index"] + 1, "hash": forged_hash.hex(),
                             "state": base64.b64encode(state).decode()})
    _rejected(signed.check(forged), "not in the signed tree")


def test_forged_and_truncated_proofs_are_rejected(signed: SignedLedger) -> None:
    signed.seal()
    bundle = signed.bundle(signed.store.deals[1])
    truncated = copy.deepcopy(bundle)
    truncated["events"][0]["inclusion_proof"].pop()
    _rejected(signed.check(truncated), "shorter than the tree requires")
    forged = copy.deepcopy(bundle)
    element = forged["events"][1]["inclusion_proof"][0]
    forged["events"][1]["inclusion_proof"][0] = ("0" if element[0] != "0" else "1") + element[1:]
    _rejected(signed.check(forged), "does not lead to the root")


def test_a_head_from_another_key_is_rejected(signed: SignedLedger) -> None:
    signed.seal()
    bundle = signed.bundle(signed.store.deals[0])
    other = Ed25519PrivateKey.generate()
    bundle["head"] = dataclasses.asdict(
        offline.sign_head(other, offline.SignedTreeHead.from_json(bundle["head"]))
    )
    _rejected(signed.check(bundle), "not by the ledger's key")
    resigned_root = copy.deepcopy(bundle)
    resigned_root["head"]["root"] = "00" * 32
    _rejected(signed.check(resigned_root), "not by the ledger's key")


def test_history_rewritten_and_re_signed_with_the_real_key_is_caught_by_the_kept_head(
    signed: SignedLedger,
) -> None:
    kept = signed.seal()
    position = signed.store.position_of(signed.store.deals[0], 2)
    column = "notification_id" if signed.store.settings.store == "postgres" else "rowid"
    signed.store.execute(f"DELETE FROM {{table}} WHERE {column} = %s", (position,))
    signed.wipe_tree()
    signed.store.ledger.log_opportunity_activity(signed.store.deals[1], "call", "y", actor="rep2")
    rewritten = signed.seal()
    assert rewritten.tree_size == kept.tree_size  # one event fewer, one more
    bundle = signed.bundle(signed.store.deals[1])
    assert signed.check(bundle).ok  # on its own the rewritten ledger looks consistent
    _rejected(signed.check(bundle, kept), "does not extend the kept head")
    signed.store.ledger.log_opportunity_activity(signed.store.deals[1], "call", "z", actor="rep2")
    signed.seal()
    bundle = signed.bundle(signed.store.deals[1], kept=(kept.tree_size,))
    _rejected(signed.check(bundle, kept), "does not extend the kept head")


def test_a_rotated_key_keeps_old_and_new_heads_verifiable(
    signed: SignedLedger, tmp_path: Path
) -> None:
    old_head = signed.seal()
    new_key = create_signing_key(tmp_path / "new-key.pem")
    rotate_key(signed.tree, signed.key, new_key)
    signed.store.ledger.log_opportunity_activity(signed.store.deals[0], "call", "r", actor="rep1")
    signed.sealer = TreeSealer(signed.store.ledger.recorder, signed.tree, new_key)  # type: ignore[arg-type]
    new_head = signed.seal()
    assert new_head.key_id == offline.key_id(new_key.public_key()) != old_head.key_id
    bundle = signed.bundle(signed.store.deals[0], kept=(old_head.tree_size,))
    check = signed.check(bundle, old_head)  # the auditor still holds only the first key
    assert check.ok, check.problems
    bundle["key_rotations"] = []
    _rejected(signed.check(bundle), "not by the ledger's key")


def test_the_witness_cosigns_only_heads_that_extend_the_last_one(
    signed: SignedLedger, tmp_path: Path
) -> None:
    witness_key = Ed25519PrivateKey.generate()
    state = tmp_path / "witness.json"
    witness = Witness(witness_key, state, signed.tree.signing_keys())
    first = signed.seal()
    head, cosignature = witness.cosign_latest(signed.tree)
    assert head == first
    offline.verify_cosignature(head, cosignature, witness_key.public_key())
    assert signed.tree.cosignatures(head.tree_size) == [cosignature]
    signed.store.ledger.log_opportunity_activity(signed.store.deals[0], "call", "w", actor="rep1")
    second = signed.seal()
    assert Witness(witness_key, state, signed.tree.signing_keys()).cosign_latest(
        signed.tree)[0] == second
    position = signed.store.position_of(signed.store.deals[1], 2)
    column = "notification_id" if signed.store.settings.store == "postgres" else "rowid"
    signed.store.execute(f"DELETE FROM {{table}} WHERE {column} = %s", (position,))
    signed.wipe_tree()
    for note in ("v", "u"):
        signed.store.ledger.log_opportunity_activity(signed.store.deals[0], "call", note,
                                                     actor="rep1")
    forked = signed.seal()
    fork_proof = TreeProofs(signed.tree).consistency(second.tree_size, forked.tree_size)
    witness = Witness(witness_key, state, signed.tree.signing_keys())
    with pytest.raises(WitnessRefusedError, match="not cosigned: the consistency proof"):
        witness.accept(forked, fork_proof)


def test_the_cli_exports_a_bundle_that_checks_offline(
    signed: SignedLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in signed.store.settings.model_dump().items():
        monkeypatch.setenv(f"LEDGER_{name.upper()}", str(value))
    monkeypatch.setenv("LEDGER_SIGNING_KEY_FILE", str(tmp_path / "signing-key.pem"))
    assert stat.S_IMODE(os.stat(tmp_path / "signing-key.pem").st_mode) == 0o600
    assert main(["seal"]) == 0
    assert main(["audit", "public-key"]) == 0
    (tmp_path / "key.pem").write_text(capsys.readouterr().out.split("\n", 1)[1])
    assert main(["audit", "head"]) == 0
    (tmp_path / "head.json").write_text(capsys.readouterr().out)
    bundle = tmp_path / "bundle.json"
    assert main(["audit", "export", signed.store.deals[0], "-o", str(bundle),
                 "--kept-head", str(tmp_path / "head.json")]) == 0
    capsys.readouterr()
    assert main(["audit", "check", str(bundle), "--public-key", str(tmp_path / "key.pem"),
                 "--kept-head", str(tmp_path / "head.json")]) == 0
    assert capsys.readouterr().out.startswith("ok: 3 events")
    data = json.loads(bundle.read_text())
    data["events"][0]["state"] = data["events"][1]["state"]
    bundle.write_text(json.dumps(data))
    assert offline.main([str(bundle), "--public-key", str(tmp_path / "key.pem")]) == 1
    assert "its content does not match its hash" in capsys.readouterr().out
