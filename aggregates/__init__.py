"""The pure domain: aggregates whose methods enforce the sales-process rules.

Nothing here does I/O; every rule can be tested without a server.
"""
