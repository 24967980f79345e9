"""Signals between the application service and the event store about stale inputs."""

from __future__ import annotations


class GuardMovedError(Exception):
    """An aggregate a decision read (but did not write) changed before the append, so
    the store refused the append; the decision is made again on fresh inputs."""
