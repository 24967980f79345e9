"""An example downstream consumer: rebuilds the sales funnel from Kafka alone.

It shows what every consumer of the ledger's topics has to do:

- join a consumer group and commit offsets by hand, only after processing;
- drop duplicates by ``ce_id`` (the relay publishes at least once);
- check each aggregate's versions arrive as 1, 2, 3 … and report any gap.

The folding (``FunnelFold``) is pure: a function of the messages, testable without a
broker and comparable with a funnel computed from the event store. ``FunnelSubscriber``
wraps it in a kafka-python consumer; with a state file it saves the fold before each
commit, so a restarted subscriber continues where its group's offsets are.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from aggregates.funnel import FIRST_STAGE, WON_STAGE
from events.messages import MessageFormatError, ReceivedEvent, decode_message, topic_name

log = logging.getLogger(__name__)

OPEN, WON, LOST = "open", "won", "lost"



@dataclass
class DealState:
    """What the funnel needs to know about one opportunity."""

    stage: int
    status: str
    amount: Decimal
    won_amount: Decimal | None = None

    @property
    def funnel_amount(self) -> Decimal:
        """The won amount for a won deal, the current expected amount otherwise."""
        return self.won_amount if self.won_amount is not None else self.amount


@dataclass(frozen=True)
class FunnelCell:
    """Opportunities at one stage with one status."""

    count: int
    amount: Decimal


Funnel = dict[tuple[int, str], FunnelCell]
"""(stage, status) → count and amount."""


@dataclass(frozen=True)
class VersionGap:
    """Versions of an aggregate that never arrived before a later one did."""

    aggregate_id: str
    expected_version: int
    received_version: int


def funnel_of(deals: Iterable[DealState]) -> Funnel:
    """Count and sum the deals by stage and status."""
    counts: dict[tuple[int, str], int] = {}
    amounts: dict[tuple[int, str], Decimal] = {}
    for deal in deals:
        key = (deal.stage, deal.status)
        counts[key] = counts.get(key, 0) + 1
        amounts[key] = amounts.get(key, Decimal(0)) + deal.funnel_amount
    return {key: FunnelCell(counts[key], amounts[key]) for key in sorted(counts)}


@dataclass
class FunnelFold:
    """The funnel folded from opportunity messages, with de-duplication and gap detection.

    ``apply`` returns ``"applied"``, ``"duplicate"`` or ``"gap"`` (applied, but versions
    are missing before it); messages of other aggregate types are ``"ignored"``.
    """

    deals: dict[str, DealState] = field(default_factory=dict)
    last_versions: dict[str, int] = field(default_factory=dict)
    seen_event_ids: set[str] = field(default_factory=set)
    gaps: list[VersionGap] = field(default_factory=list)
    duplicates: int = 0

    def apply(self, message: ReceivedEvent) -> str:
        if message.aggregate_type != "opportunity":
            return "ignored"
        if message.event_id in self.seen_event_ids:
            self.duplicates += 1
            return "duplicate"
        self.seen_event_ids.add(message.event_id)
        expected = self.last_versions.get(message.aggregate_id, 0) + 1
        outcome = "applied"
        if message.aggregate_version < expected:
            self.duplicates += 1
            return "duplicate"
        if message.aggregate_version > expected:
            gap = VersionGap(message.aggregate_id, expected, message.aggregate_version)
            self.gaps.append(gap)
            log.warning(
                "opportunity %s: versions %d–%d missing before %d",
                gap.aggregate_id, expected, gap.received_version - 1, gap.received_version,
            )
            outcome = "gap"
        self.last_versions[message.aggregate_id] = message.aggregate_version
        self._evolve(message)
        return outcome

    def _evolve(self, message: ReceivedEvent) -> None:
        data = message.data
        name = message.event_name
        if name == "OpportunityOpened":
            self.deals[message.aggregate_id] = DealState(FIRST_STAGE, OPEN, Decimal(data["amount"]))
            return
        deal = self.deals.get(message.aggregate_id)
        if deal is None:
            return
        if name == "StageAdvanced":
            deal.stage = int(data["to_stage"])
        elif name == "OpportunityDisqualified":
            deal.stage = FIRST_STAGE
        elif name == "AmountRevised":
            deal.amount = Decimal(data["amount"])
        elif name == "OpportunityWon":
            deal.status, deal.stage, deal.won_amount = WON, WON_STAGE, Decimal(data["amount"])
        elif name == "OpportunityLost":
            deal.status = LOST
        elif name == "OpportunityReopened":
            deal.status, deal.stage, deal.won_amount = OPEN, int(data["stage"]), None

    def funnel(self) -> Funnel:
        return funnel_of(self.deals.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "deals": {
                deal_id: [d.stage, d.status, str(d.amount), _optional_str(d.won_amount)]
                for deal_id, d in self.deals.items()
            },
            "last_versions": self.last_versions,
            "seen_event_ids": sorted(self.seen_event_ids),
            "gaps": [[g.aggregate_id, g.expected_version, g.received_version] for g in self.gaps],
            "duplicates": self.duplicates,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FunnelFold:
        return cls(
            deals={
                deal_id: DealState(
                    stage, status, Decimal(amount), None if won is None else Decimal(won)
                )
                for deal_id, (stage, status, amount, won) in data["deals"].items()
            },
            last_versions=dict(data["last_versions"]),
            seen_event_ids=set(data["seen_event_ids"]),
            gaps=[VersionGap(*gap) for gap in data["gaps"]],
            duplicates=int(data["duplicates"]),
        )


def fold_funnel(messages: Iterable[ReceivedEvent]) -> FunnelFold:
    """Fold ``messages`` (in consumption order) into a funnel."""
    fold = FunnelFold()
    for message in messages:
        fold.apply(message)
    return fold


def funnel_table(funnel: Funnel) -> str:
    """The funnel as an aligned text table."""
    lines = [f"{'stage':>5}  {'status':<6} {'count':>7} {'amount':>16}"]
    for (stage, status), cell in funnel.items():
        lines.append(f"{stage:>5}  {status:<6} {cell.count:>7} {cell.amount:>16}")
    return "\n".join(lines)


def _optional_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class FunnelSubscriber:
    """Consumes ``{prefix}.opportunity`` in a consumer group and folds the funnel."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str,
        group_id: str,
        *,
        state_path: Path | None = None,
        consumer_factory: Callable[..., Any] = KafkaConsumer,
    ) -> None:
        self.topic = topic_name(topic_prefix, "opportunity")
        self.state_path = state_path
        self.fold = self._load_state()
        self.consumed = 0
        self.malformed = 0
        self._consumer = consumer_factory(
            self.topic,
            bootstrap_servers=bootstrap_servers.split(","),
            group_id=group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            client_id=f"salesledger-subscriber-{group_id}",
        )

    def _load_state(self) -> FunnelFold:
        if self.state_path is None or not self.state_path.exists():
            return FunnelFold()
        return FunnelFold.from_json(json.loads(self.state_path.read_text()))

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        partial = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        partial.write_text(json.dumps(self.fold.to_json()))
        os.replace(partial, self.state_path)

    def poll_once(self, timeout: float = 1.0) -> int:
        """Process one poll's messages, save the state, then commit; returns the count."""
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        count = 0
        for records in batches.values():
            for record in records:
                try:
                    message = decode_message(record.headers or [], record.value)
                except MessageFormatError as error:
                    self.malformed += 1
                    log.warning("skipping %s@%d: %s", record.topic, record.offset, error)
                    continue
                self.fold.apply(message)
                count += 1
        if batches:
            self._save_state()
            self._consumer.commit()
        self.consumed += count
        return count

    def run(
        self, stop: threading.Event | None = None, *, idle_timeout: float | None = None
    ) -> FunnelFold:
        """Consume until ``stop`` is set or nothing arrived for ``idle_timeout`` seconds."""
        stop = stop or threading.Event()
        last_message = time.monotonic()
        while not stop.is_set():
            if self.poll_once():
                last_message = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last_message >= idle_timeout:
                break
        return self.fold

    def close(self) -> None:
        self._consumer.close()
