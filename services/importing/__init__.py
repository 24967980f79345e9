"""Importing from other CRMs (and exporting the ledger in the same shape)."""
