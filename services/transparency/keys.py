"""The ledger's Ed25519 signing key: made once (a PEM file readable only by its owner),
shared by every sealing process through ``LEDGER_SIGNING_KEY_FILE``, registered in the
database, and rotated by a statement the old key signs."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency.offline import (
    KeyRotation,
    key_id,
    load_public_key,
    public_key_pem,
    trusted_keys,
)
from services.transparency.store import TreeStore


class SigningKeyError(Exception):
    """The signing key is missing, unreadable or not an Ed25519 key."""


def create_signing_key(path: Path) -> Ed25519PrivateKey:
    """A new key written to ``path`` with mode 0600; refuses to overwrite a file."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} already exists; it is not overwritten") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The key in the PEM file ``path`` (LEDGER_SIGNING_KEY_FILE)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SigningKeyError(
            f"cannot read the signing key {path} ({error.strerror}): run `salesledger init` "
            "or set LEDGER_SIGNING_KEY_FILE to the ledger's key"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise SigningKeyError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def register_first_key(tree: TreeStore, key: Ed25519PrivateKey) -> KeyRotation:
    """Record ``key`` as the ledger's key if it has none yet; the current key's record."""
    keys = tree.signing_keys()
    if keys:
        return keys[-1]
    first = KeyRotation(
        previous_key_id="", new_key_id=key_id(key.public_key()),
        new_public_key=public_key_pem(key.public_key()), timestamp_ms=int(time.time() * 1000),
    )
    tree.insert_key(first)
    return first


def rotate_key(tree: TreeStore, old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> KeyRotation:
    """Announce ``new`` as the ledger's key, signed by ``old`` (its current key)."""
    current = register_first_key(tree, old)
    if current.new_key_id != key_id(old.public_key()):
        raise SigningKeyError(f"the old key is not the ledger's current key {current.new_key_id}")
    unsigned = KeyRotation(
        previous_key_id=current.new_key_id, new_key_id=key_id(new.public_key()),
        new_public_key=public_key_pem(new.public_key()), timestamp_ms=int(time.time() * 1000),
    )
    rotation = KeyRotation(
        **{**unsigned.__dict__,
           "signature": base64.b64encode(old.sign(unsigned.signed_bytes())).decode()}
    )
    tree.insert_key(rotation)
    return rotation


def first_public_key_pem(tree: TreeStore) -> str | None:
    """The ledger's first public key (the one auditors pin); None before ``init``."""
    keys = tree.signing_keys()
    return keys[0].new_public_key if keys else None


def current_public_key_pem(tree: TreeStore) -> str | None:
    """The ledger's current public key, if its chain of rotations from the first verifies."""
    keys = tree.signing_keys()
    if not keys:
        return None
    trusted = trusted_keys(load_public_key(keys[0].new_public_key.encode()), keys[1:])
    current = keys[-1]
    return current.new_public_key if current.new_key_id in trusted else None
