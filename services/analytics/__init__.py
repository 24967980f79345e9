"""Adapters of the analytics: read the ledger's events, hand them to the pure computations."""
