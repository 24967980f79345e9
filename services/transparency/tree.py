"""The Merkle tree kept by the sealing worker, and proofs read from it.

``TreeSealer.seal`` first extends the seals (``services.integrity.Sealer``: the events
below the read horizon, where no gap can still fill), then appends their event hashes as
leaves, in global order, storing each complete subtree once, and signs a tree head. Only
the right edge of the tree (at most log₂ n subtree hashes) is read to extend it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.integrity import ChainStore, Sealer
from services.transparency.offline import (
    ProofError,
    SignedTreeHead,
    consistency_ranges,
    hash_from_subtrees,
    inclusion_ranges,
    key_id,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    sign_head,
)
from services.transparency.store import TreeConflictError, TreeStore

TREE_BATCH = 20_000
"""Leaves added (and one head signed) per transaction at most."""


@dataclass
class Frontier:
    """The right edge of a tree: its complete subtrees (level, index, hash), left to right."""

    size: int
    nodes: list[tuple[int, int, bytes]]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; the complete subtrees of two or more leaves it completes."""
        made: list[tuple[int, int, bytes]] = []
        self.nodes.append((0, self.size, leaf))
        self.size += 1
        while len(self.nodes) > 1 and self.nodes[-1][0] == self.nodes[-2][0]:
            right = self.nodes.pop()
            left = self.nodes.pop()
            merged = (left[0] + 1, left[1] >> 1, node_hash(left[2], right[2]))
            self.nodes.append(merged)
            made.append(merged)
        return made

    def root(self) -> bytes:
        result = self.nodes[-1][2]
        for _, _, left in reversed(self.nodes[:-1]):
            result = node_hash(left, result)
        return result


def load_frontier(tree: TreeStore, size: int) -> Frontier:
    wanted = perfect_subtrees(0, size)
    found = tree.select_nodes(wanted)
    return Frontier(size, [(level, index, found[(level, index)]) for level, index in wanted])


class SigningKeyMismatchError(Exception):
    """The sealer's key is not the ledger's current signing key."""


class TreeSealer:
    """Seals new events, extends the tree over them and signs a head per batch."""

    def __init__(
        self, chain: ChainStore, tree: TreeStore, key: Ed25519PrivateKey,
        batch_size: int = TREE_BATCH,
    ) -> None:
        self.chain = chain
        self.tree = tree
        self.key = key
        self.batch_size = batch_size
        self.key_id = key_id(key.public_key())

    def check_key(self) -> None:
        """Refuse to sign with a key that is not the ledger's latest registered one."""
        keys = self.tree.signing_keys()
        if keys and keys[-1].new_key_id != self.key_id:
            raise SigningKeyMismatchError(
                f"the signing key {self.key_id} is not the ledger's current key "
                f"{keys[-1].new_key_id}: set LEDGER_SIGNING_KEY_FILE to the current key"
            )

    def seal(self, upto: int | None = None) -> SignedTreeHead | None:
        """Seal and extend the tree as far as the read horizon allows; the latest head."""
        self.check_key()
        Sealer(self.chain).seal(upto)
        while self._extend():
            pass
        return self.tree.latest_head()

    def _extend(self) -> bool:
        size, last_position = self.tree.tree_size()
        leaves = self._next_leaves(last_position)
        if not leaves:
            return False
        frontier = load_frontier(self.tree, size)
        rows: list[tuple[int, int, bytes]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for position, event_hash in leaves:
            rows.append((frontier.size, position, event_hash))
            nodes.extend(frontier.append(leaf_hash(event_hash)))
        head = sign_head(self.key, SignedTreeHead(
            tree_size=frontier.size, root=frontier.root().hex(),
            timestamp_ms=int(time.time() * 1000), last_position=leaves[-1][0], key_id="",
        ))
        # A conflict means another sealer got there first: reload and go on from its tree.
        with contextlib.suppress(TreeConflictError):
            self.tree.append(rows, [n for n in nodes if n[0] > 0], head)
        return True

    def _next_leaves(self, after: int) -> list[tuple[int, bytes]]:
        leaves: list[tuple[int, bytes]] = []
        for seal in self.chain.select_seals(after=after):
            leaves.extend(
                (position, hash_)
                for position, hash_ in zip(seal.positions, seal.event_hashes, strict=True)
                if position > after
            )
            if len(leaves) >= self.batch_size:
                break
        return leaves


class TreeProofs:
    """Inclusion and consistency proofs from the stored subtrees (O(log² n) rows read)."""

    def __init__(self, tree: TreeStore) -> None:
        self.tree = tree

    def hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = [node for start, end in ranges for node in perfect_subtrees(start, end)]
        found = self.tree.select_nodes(wanted)
        missing = [node for node in wanted if node not in found]
        if missing:
            raise ProofError(f"the tree lacks the subtree {missing[0]}; it is not sealed yet")
        return [hash_from_subtrees(start, end, found) for start, end in ranges]

    def inclusion(self, leaf_index: int, tree_size: int) -> list[bytes]:
        return self.hashes(inclusion_ranges(leaf_index, tree_size))

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        if old_size == new_size:
            return []
        return self.hashes(consistency_ranges(old_size, new_size))
