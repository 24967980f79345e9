"""Read models derived from the ledger's events.

Each projection owns its tables, records its position in ``projection_positions`` in
the same transaction as its rows, and can be rebuilt from event 1
(``salesledger rebuild NAME``). ``projections.registry`` lists them all.
"""
