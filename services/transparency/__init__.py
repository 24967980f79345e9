"""Transparency: a Merkle tree over the ledger's global order (RFC 9162), Ed25519-signed
tree heads, inclusion and consistency proofs, audit bundles, a witness, Kafka checkpoints.

``offline`` is the auditor's module: standard library and ``cryptography`` only."""
