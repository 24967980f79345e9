"""Audit bundles and proofs as the ledger hands them out (checked by ``offline``)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any
from uuid import UUID

from services.integrity import ChainStore
from services.transparency.offline import BUNDLE_FORMAT, ProofError, SignedTreeHead
from services.transparency.store import TreeStore
from services.transparency.tree import TreeProofs


class NotInTreeError(LookupError):
    """The event or head asked for is not (yet) in the signed tree."""


def head_at(tree: TreeStore, tree_size: int | None) -> SignedTreeHead:
    head = tree.latest_head() if tree_size is None else tree.head(tree_size)
    if head is None:
        raise NotInTreeError(
            "no signed head yet: run `salesledger seal`" if tree_size is None
            else f"no signed head of tree size {tree_size}"
        )
    return head


def inclusion_by_position(
    tree: TreeStore, position: int, tree_size: int | None = None
) -> dict[str, Any]:
    """The proof that the event at ``position`` is in the head of ``tree_size``."""
    head = head_at(tree, tree_size)
    found = tree.leaves_at([position]).get(position)
    if found is None or found[0] >= head.tree_size:
        raise NotInTreeError(f"position {position} is not in the tree of size {head.tree_size}")
    leaf_index, event_hash = found
    proof = TreeProofs(tree).inclusion(leaf_index, head.tree_size)
    return {
        "position": position, "leaf_index": leaf_index, "event_hash": event_hash.hex(),
        "tree_size": head.tree_size, "inclusion_proof": [p.hex() for p in proof],
        "head": asdict(head),
    }


def consistency_between(tree: TreeStore, old_size: int, new_size: int | None) -> dict[str, Any]:
    """The proof that the head of ``new_size`` (default latest) extends that of ``old_size``."""
    new = head_at(tree, new_size)
    old = head_at(tree, old_size)
    if old.tree_size > new.tree_size:
        raise NotInTreeError(f"tree size {old_size} is after {new.tree_size}")
    try:
        proof = TreeProofs(tree).consistency(old.tree_size, new.tree_size)
    except ProofError as error:
        raise NotInTreeError(str(error)) from None
    return {
        "from_size": old.tree_size, "to_size": new.tree_size,
        "proof": [p.hex() for p in proof], "from_head": asdict(old), "to_head": asdict(new),
    }


def export_bundle(
    chain: ChainStore, tree: TreeStore, aggregate_id: UUID,
    kept_sizes: Sequence[int] = (), tree_size: int | None = None,
) -> dict[str, Any]:
    """One aggregate's events with hashes and inclusion proofs against a signed head,
    the key rotations, and consistency proofs from ``kept_sizes``."""
    head = head_at(tree, tree_size)
    records = chain.select_aggregate_chain(aggregate_id)
    if not records:
        raise NotInTreeError(f"no events of {aggregate_id}")
    leaves = tree.leaves_at([r.position for r in records])
    proofs = TreeProofs(tree)
    events = []
    for record in records:
        leaf = leaves.get(record.position)
        if leaf is None or leaf[0] >= head.tree_size:
            break  # events after the head wait for the next seal
        events.append({
            "position": record.position, "leaf_index": leaf[0], "version": record.version,
            "topic": record.topic, "state": base64.b64encode(record.state).decode(),
            "hash": leaf[1].hex(),
            "inclusion_proof": [p.hex() for p in proofs.inclusion(leaf[0], head.tree_size)],
        })
    consistency = []
    for size in sorted(set(kept_sizes)):
        if 0 < size < head.tree_size:
            proof = proofs.consistency(size, head.tree_size)
            consistency.append({"from_size": size, "proof": [p.hex() for p in proof]})
    return {
        "format": BUNDLE_FORMAT, "aggregate_id": str(aggregate_id), "head": asdict(head),
        "cosignatures": [asdict(c) for c in tree.cosignatures(head.tree_size)],
        "key_rotations": [asdict(k) for k in tree.signing_keys() if k.previous_key_id],
        "events": events, "consistency": consistency,
    }
