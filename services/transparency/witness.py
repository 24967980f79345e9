"""A witness: it keeps the last head it accepted and cosigns a new head only when a
consistency proof shows the new one extends it, so a ledger cannot show one history to
the witness and another to someone else without one of them noticing."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency.offline import (
    Cosignature,
    KeyRotation,
    ProofError,
    SignedTreeHead,
    cosigned_bytes,
    key_id,
    load_public_key,
    trusted_keys,
    verify_consistency,
    verify_head,
)
from services.transparency.store import TreeStore
from services.transparency.tree import TreeProofs


class WitnessRefusedError(Exception):
    """The witness did not cosign: the reason is the message."""


class Witness:
    """Cosigns heads that extend the last one it accepted (kept in ``state_path``)."""

    def __init__(
        self, key: Ed25519PrivateKey, state_path: Path, ledger_keys: list[KeyRotation]
    ) -> None:
        self.key = key
        self.key_id = key_id(key.public_key())
        self.state_path = state_path
        state = json.loads(state_path.read_text("utf-8")) if state_path.exists() else {}
        pinned = state.get("ledger_public_key") or (
            ledger_keys[0].new_public_key if ledger_keys else None
        )
        if pinned is None:
            raise WitnessRefusedError("the ledger has no signing key yet")
        self.pinned_key = pinned
        self.keys = trusted_keys(load_public_key(pinned.encode()), ledger_keys)
        last = state.get("last_head")
        self.last = SignedTreeHead.from_json(last) if last else None

    def accept(self, head: SignedTreeHead, proof: list[bytes]) -> Cosignature:
        """Cosign ``head`` if it is signed by the ledger and ``proof`` shows it extends
        the last accepted head; raises ``WitnessRefusedError`` otherwise."""
        try:
            verify_head(head, self.keys)
            if self.last is not None:
                verify_consistency(self.last.tree_size, head.tree_size, self.last.root_bytes,
                                   head.root_bytes, proof)
        except ProofError as error:
            raise WitnessRefusedError(f"not cosigned: {error}") from None
        now = int(time.time() * 1000)
        signature = self.key.sign(cosigned_bytes(head, self.key_id, now))
        self.last = head
        self.state_path.write_text(json.dumps(
            {"ledger_public_key": self.pinned_key, "last_head": asdict(head)}), "utf-8")
        return Cosignature(self.key_id, now, base64.b64encode(signature).decode())

    def cosign_latest(self, tree: TreeStore) -> tuple[SignedTreeHead, Cosignature]:
        """Fetch the ledger's latest head and a proof from the last one; cosign, record."""
        head = tree.latest_head()
        if head is None:
            raise WitnessRefusedError("the ledger has no signed head yet")
        old_size = self.last.tree_size if self.last else head.tree_size
        if old_size > head.tree_size:
            raise WitnessRefusedError(
                f"not cosigned: the latest head (size {head.tree_size}) is older than the "
                f"last accepted (size {old_size})")
        proof = TreeProofs(tree).consistency(old_size, head.tree_size) if old_size else []
        cosignature = self.accept(head, proof)
        tree.insert_cosignature(head.tree_size, cosignature)
        return head, cosignature
