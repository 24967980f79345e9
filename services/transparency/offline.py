"""The auditor's verifier: RFC 9162 Merkle proofs, signed tree heads and audit bundles.

This one module depends only on the Python standard library and ``cryptography``, so an
auditor can read all of it and run it with nothing but files and the ledger's public
key (``python offline.py BUNDLE --public-key KEY [--kept-head HEAD]``). No database,
network or secret is used.

- Hashing (RFC 9162 §2.1.1): ``leaf = SHA-256(0x00 || event chain hash)``,
  ``node = SHA-256(0x01 || left || right)``; the tree is over the ledger's global order.
- Proofs: inclusion (§2.1.3) and consistency (§2.1.4), generated from any source of
  subtree hashes and verified by the algorithms of §2.1.3.2 and §2.1.4.2, checking every
  part of the proof (its length, the indices, both roots).
- A signed tree head is (tree size, root, time, last position, key id) signed with
  Ed25519; a key rotation is a statement signed by the previous key.
- A bundle is one aggregate's events with their chain hashes and inclusion proofs, the
  signed head they are proved against, the key rotations, and consistency proofs from
  earlier heads.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = bytes(32)
"""The previous hash of an aggregate's first event."""
HASH_SIZE = 32
BUNDLE_FORMAT = "salesledger-audit-bundle/v1"
_INT8 = struct.Struct(">q")
_INT4 = struct.Struct(">i")

RangeHash = Callable[[int, int], bytes]
"""MTH(D[start:end]) for a tree's leaves ``start`` (inclusive) .. ``end`` (exclusive)."""


class ProofError(ValueError):
    """A proof, head or bundle does not verify; the message says why."""


# Event chain hashes (the per-aggregate chain, see services/chain.py).


def canonical_encoding(originator_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """The bytes an event's hash covers after the previous hash: id (16 bytes), version
    (int8), topic length (int4) and topic (UTF-8), then the stored state."""
    topic_bytes = topic.encode("utf-8")
    return b"".join(
        (originator_id.bytes, _INT8.pack(version), _INT4.pack(len(topic_bytes)), topic_bytes, state)
    )


def event_hash(
    previous: bytes, originator_id: UUID, version: int, topic: str, state: bytes
) -> bytes:
    """The hash of an event chained to ``previous`` (its aggregate's previous event hash)."""
    digest = hashlib.sha256(previous)
    digest.update(canonical_encoding(originator_id, version, topic, state))
    return digest.digest()


# RFC 9162 hashing.


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf data ``leaves`` (RFC 9162 §2.1.1); SHA-256('') for none."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(leaf) for leaf in leaves]
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees, as (level, index), whose hashes make MTH(D[start:end]) for
    a range the proofs ask for (``start`` a multiple of a power of two ≥ its length)."""
    nodes: list[tuple[int, int]] = []
    while end > start:
        size = end - start
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            nodes.append((level, start >> level))
            return nodes
        k = split_point(size)
        level = k.bit_length() - 1
        nodes.append((level, start >> level))
        start += k
    return nodes


def hash_from_subtrees(start: int, end: int, nodes: dict[tuple[int, int], bytes]) -> bytes:
    """MTH(D[start:end]) from the hashes of its ``perfect_subtrees``."""
    hashes = [nodes[node] for node in perfect_subtrees(start, end)]
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


# Proof generation (RFC 9162 §2.1.3.1 and §2.1.4.1).


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees (start, end) whose hashes form PATH(index, D[size]), leaf first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index - start < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return list(reversed(ranges))


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The subtrees (start, end) whose hashes form PROOF(old_size, D[new_size])."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    ranges: list[tuple[int, int]] = []
    start, end, complete = 0, new_size, True
    m = old_size
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            complete = False
    if not complete:
        ranges.append((start, end))
    return list(reversed(ranges))


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    return [range_hash(start, end) for start, end in inclusion_ranges(index, size)]


def consistency_proof(old_size: int, new_size: int, range_hash: RangeHash) -> list[bytes]:
    return [range_hash(start, end) for start, end in consistency_ranges(old_size, new_size)]


def range_hash_of(leaves: Sequence[bytes]) -> RangeHash:
    """A ``RangeHash`` over leaf data held in memory (for small trees and tests)."""
    return lambda start, end: tree_hash(leaves[start:end])


# Proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2).


def _check_hashes(proof: Sequence[bytes], *named: tuple[str, bytes]) -> None:
    for name, value in named:
        if len(value) != HASH_SIZE:
            raise ProofError(f"the {name} is not a {HASH_SIZE}-byte hash")
    if any(len(p) != HASH_SIZE for p in proof):
        raise ProofError(f"a proof element is not a {HASH_SIZE}-byte hash")


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root an inclusion proof leads to from the leaf hash ``leaf`` (§2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    _check_hashes(proof, ("leaf hash", leaf))
    fn, sn, result = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            result = node_hash(p, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree requires")
    return result


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the
    tree of ``size`` leaves with ``root``."""
    _check_hashes((), ("root", root))
    if not hmac.compare_digest(root_from_inclusion_proof(index, size, leaf, proof), root):
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows the tree of ``new_size`` leaves with
    ``new_root`` extends the tree of ``old_size`` leaves with ``old_root`` (§2.1.4.2)."""
    _check_hashes(proof, ("old root", old_root), ("new root", new_root))
    if old_size > new_size or old_size < 0:
        raise ProofError(f"a tree of size {new_size} cannot extend one of size {old_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise ProofError("two heads of the same size have different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the trees require")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError(f"the consistency proof does not lead to the old root (size {old_size})")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError(f"the consistency proof does not lead to the new root (size {new_size})")


# Keys, signed tree heads and cosignatures.


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ProofError("the public key is not an Ed25519 key")
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class SignedTreeHead:
    """The tree over the first ``tree_size`` events (up to ``last_position``), signed."""

    tree_size: int
    root: str
    timestamp_ms: int
    last_position: int
    key_id: str
    signature: str = ""

    def signed_bytes(self) -> bytes:
        return (
            "salesledger tree head v1\n"
            f"size {self.tree_size}\nroot {self.root}\ntime {self.timestamp_ms}\n"
            f"last-position {self.last_position}\nkey {self.key_id}\n"
        ).encode()

    @property
    def root_bytes(self) -> bytes:
        return _hex(self.root, "head root")

    @classmethod
    def from_json(cls, data: Any) -> SignedTreeHead:
        try:
            return cls(
                tree_size=int(data["tree_size"]), root=str(data["root"]),
                timestamp_ms=int(data["timestamp_ms"]), last_position=int(data["last_position"]),
                key_id=str(data["key_id"]), signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ProofError(f"not a signed tree head: missing or bad {error}") from None


@dataclass(frozen=True)
class Cosignature:
    """A witness's signature over a head it checked extends every head it saw before."""

    witness_key_id: str
    timestamp_ms: int
    signature: str


def cosigned_bytes(head: SignedTreeHead, witness_key_id: str, timestamp_ms: int) -> bytes:
    return (
        b"salesledger cosignature v1\n" + head.signed_bytes()
        + f"witness {witness_key_id}\ntime {timestamp_ms}\n".encode()
    )


@dataclass(frozen=True)
class KeyRotation:
    """The ledger's new signing key, announced and signed by the key it replaces."""

    previous_key_id: str
    new_key_id: str
    new_public_key: str
    timestamp_ms: int
    signature: str = ""

    def signed_bytes(self) -> bytes:
        return (
            "salesledger key rotation v1\n"
            f"previous {self.previous_key_id}\nnew {self.new_key_id}\n"
            f"time {self.timestamp_ms}\n{self.new_public_key}"
        ).encode()


def sign_head(key: Ed25519PrivateKey, head: SignedTreeHead) -> SignedTreeHead:
    unsigned = SignedTreeHead(**{**asdict(head), "key_id": key_id(key.public_key()),
                                 "signature": ""})
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode()
    return SignedTreeHead(**{**asdict(unsigned), "signature": signature})


def _verify_signature(public_key: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def trusted_keys(
    public_key: Ed25519PublicKey, rotations: Sequence[KeyRotation]
) -> dict[str, Ed25519PublicKey]:
    """The auditor's key and every key it endorsed by a signed rotation, transitively."""
    keys = {key_id(public_key): public_key}
    pending = list(rotations)
    progress = True
    while pending and progress:
        progress = False
        for rotation in list(pending):
            endorser = keys.get(rotation.previous_key_id)
            if endorser is None:
                continue
            pending.remove(rotation)
            new_key = load_public_key(rotation.new_public_key.encode())
            if (
                key_id(new_key) == rotation.new_key_id
                and _verify_signature(endorser, rotation.signature, rotation.signed_bytes())
            ):
                keys[rotation.new_key_id] = new_key
                progress = True
    return keys


def verify_head(head: SignedTreeHead, keys: dict[str, Ed25519PublicKey]) -> None:
    """Raise ``ProofError`` unless ``head`` is signed by one of ``keys``."""
    key = keys.get(head.key_id)
    if key is None:
        raise ProofError(f"the head is signed by key {head.key_id}, not by the ledger's key "
                         f"({', '.join(sorted(keys))}) or a key it rotated to")
    if not _verify_signature(key, head.signature, head.signed_bytes()):
        raise ProofError(f"the signature of the head of size {head.tree_size} is not valid")


def verify_cosignature(
    head: SignedTreeHead, cosignature: Cosignature, witness_key: Ed25519PublicKey
) -> None:
    if cosignature.witness_key_id != key_id(witness_key):
        raise ProofError("the cosignature is by another witness")
    message = cosigned_bytes(head, cosignature.witness_key_id, cosignature.timestamp_ms)
    if not _verify_signature(witness_key, cosignature.signature, message):
        raise ProofError(f"the witness's cosignature of size {head.tree_size} is not valid")


# Audit bundles.


@dataclass
class BundleCheck:
    """What checking a bundle found: ``problems`` empty means every check passed."""

    aggregate_id: str = ""
    events: int = 0
    tree_size: int = 0
    kept_size: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _hex(value: Any, name: str) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        raise ProofError(f"the {name} is not hexadecimal") from None


def check_bundle(
    bundle: dict[str, Any],
    public_key: Ed25519PublicKey,
    kept_head: SignedTreeHead | None = None,
) -> BundleCheck:
    """Verify a bundle: the head's signature, that it extends ``kept_head``, every event's
    chain hash and inclusion proof, and the aggregate's chain from its first event."""
    check = BundleCheck(aggregate_id=str(bundle.get("aggregate_id", "")))
    try:
        if bundle.get("format") != BUNDLE_FORMAT:
            raise ProofError(f"not a {BUNDLE_FORMAT} bundle")
        rotations = [KeyRotation(**r) for r in bundle.get("key_rotations", [])]
        keys = trusted_keys(public_key, rotations)
        head = SignedTreeHead.from_json(bundle.get("head"))
        check.tree_size = head.tree_size
        verify_head(head, keys)
        if kept_head is not None:
            check.kept_size = kept_head.tree_size
            _check_extends(bundle, head, kept_head, keys)
        _check_events(bundle, head, check)
    except ProofError as error:
        check.problems.append(str(error))
    except (KeyError, TypeError, ValueError) as error:
        check.problems.append(f"the bundle is malformed: {error!r}")
    return check


def _check_extends(
    bundle: dict[str, Any],
    head: SignedTreeHead,
    kept: SignedTreeHead,
    keys: dict[str, Ed25519PublicKey],
) -> None:
    try:
        verify_head(kept, keys)
    except ProofError as error:
        raise ProofError(f"the kept head does not verify: {error}") from None
    if kept.tree_size > head.tree_size:
        raise ProofError(f"the head (size {head.tree_size}) is older than the kept head "
                         f"(size {kept.tree_size})")
    proofs = {int(p["from_size"]): p["proof"] for p in bundle.get("consistency", [])}
    if kept.tree_size not in proofs and kept.tree_size not in (0, head.tree_size):
        raise ProofError(f"the bundle has no consistency proof from the kept head's size "
                         f"{kept.tree_size}")
    proof = [_hex(p, "consistency proof element") for p in proofs.get(kept.tree_size, [])]
    try:
        verify_consistency(kept.tree_size, head.tree_size, kept.root_bytes, head.root_bytes,
                           proof)
    except ProofError as error:
        raise ProofError(f"the head does not extend the kept head: {error}") from None


def _check_events(bundle: dict[str, Any], head: SignedTreeHead, check: BundleCheck) -> None:
    aggregate_id = UUID(str(bundle["aggregate_id"]))
    events = bundle["events"]
    if not events:
        raise ProofError("the bundle holds no event")
    previous, previous_leaf = GENESIS, -1
    for expected_version, event in enumerate(events, start=1):
        version, leaf_index = int(event["version"]), int(event["leaf_index"])
        where = f"version {version} (position {event.get('position')})"
        if version != expected_version:
            raise ProofError(f"event {where}: expected version {expected_version}; "
                             "an event is missing or out of order")
        if leaf_index <= previous_leaf:
            raise ProofError(f"event {where}: leaf {leaf_index} does not follow leaf "
                             f"{previous_leaf}; the events are reordered")
        state = base64.b64decode(event["state"], validate=True)
        computed = event_hash(previous, aggregate_id, version, str(event["topic"]), state)
        if not hmac.compare_digest(computed, _hex(event["hash"], "event hash")):
            raise ProofError(f"event {where}: its content does not match its hash")
        proof = [_hex(p, "inclusion proof element") for p in event["inclusion_proof"]]
        try:
            verify_inclusion(leaf_index, head.tree_size, leaf_hash(computed), proof,
                             head.root_bytes)
        except ProofError as error:
            raise ProofError(f"event {where}: not in the signed tree: {error}") from None
        previous, previous_leaf = computed, leaf_index
        check.events += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a salesledger audit bundle offline.")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--public-key", type=Path, required=True, help="the ledger's PEM key")
    parser.add_argument("--kept-head", type=Path, default=None, help="a head kept earlier")
    args = parser.parse_args(argv)
    check = check_bundle_files(args.bundle, args.public_key, args.kept_head)
    print(describe(check))
    return 0 if check.ok else 1


def check_bundle_files(bundle: Path, public_key: Path, kept_head: Path | None) -> BundleCheck:
    """``check_bundle`` on files: the bundle, the PEM public key, optionally a kept head."""
    kept = None
    if kept_head is not None:
        kept = SignedTreeHead.from_json(json.loads(kept_head.read_text(encoding="utf-8")))
    return check_bundle(
        json.loads(bundle.read_text(encoding="utf-8")),
        load_public_key(public_key.read_bytes()),
        kept,
    )


def describe(check: BundleCheck) -> str:
    if check.ok:
        extends = f", extends the kept head of size {check.kept_size}" if check.kept_size else ""
        return (f"ok: {check.events} events of {check.aggregate_id} are in the signed tree of "
                f"size {check.tree_size}, their chain is intact{extends}")
    return "REJECTED: " + "; ".join(check.problems)


if __name__ == "__main__":
    sys.exit(main())
