"""The HTTP API: commands of the ledger and queries of its projections."""
