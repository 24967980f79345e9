"""The Merkle tree's costs: seal lag under concurrent writes, proof latency at a large
tree size, the offline check of a 100-event bundle.

- ``lag``: 8 client threads log activities on PostgreSQL for ``--seconds`` while a
  sealing thread seals (tree + signed head) in a loop; each sample is how old the newest
  sealed event was when its head was signed; p50/p99/max.
- ``proofs``: a tree of ``--size`` leaves (random event hashes sealed through the real
  ``TreeSealer`` and tree store) on SQLite or PostgreSQL; ``--samples`` random inclusion
  and consistency proofs are generated and verified; p50/p99.
- ``bundle``: a deal with 100 events on SQLite, sealed, exported; ``check_bundle`` timed.

    python -m bench.transparency lag --seconds 20
    python -m bench.transparency proofs --size 1000000 --store sqlite
    python -m bench.transparency bundle
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.harness import fresh_database, ledger_env, prepare_deals
from commands.ledger import SalesLedger
from services.chain import Seal
from services.settings import Settings
from services.transparency import offline
from services.transparency.bundle import export_bundle
from services.transparency.store import tree_store_for
from services.transparency.tree import TreeProofs, TreeSealer


def percentiles(samples: Sequence[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"max {ordered[-1] * 1000:.2f} ms ({len(ordered)} samples)")


def bench_lag(seconds: float, clients: int) -> None:
    with fresh_database("lag") as dbname:
        env = ledger_env(dbname)
        deals = prepare_deals(env, clients)
        ledger = SalesLedger(env=env)
        tree = tree_store_for(ledger.recorder)
        sealer = TreeSealer(ledger.recorder, tree, Ed25519PrivateKey.generate())  # type: ignore[arg-type]
        sealer.seal()
        written: dict[int, float] = {}
        stop = threading.Event()

        def write(deal: tuple[str, str]) -> None:
            writer = SalesLedger(env=env)
            while not stop.is_set():
                result = writer.log_opportunity_activity(deal[0], "call", "bench", actor=deal[1])
                if result.position is not None:
                    written[result.position] = time.monotonic()
            writer.close()

        threads = [threading.Thread(target=write, args=(d,)) for d in deals]
        for thread in threads:
            thread.start()
        lags: list[float] = []
        deadline = time.monotonic() + seconds
        last = 0
        while time.monotonic() < deadline:
            head = sealer.seal()
            if head is not None and head.last_position != last and head.last_position in written:
                lags.append(time.monotonic() - written[head.last_position])
                last = head.last_position
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        size = tree.tree_size()[0]
        print(f"seal lag with {clients} writing clients over {seconds:.0f} s "
              f"({len(written)} events written, tree size {size}): {percentiles(lags)}")
        ledger.close()


class SyntheticChain:
    """Seals of random event hashes: what the tree sealer reads, without writing events."""

    def __init__(self, size: int, seal_size: int = 20_000) -> None:
        self.size = size
        self.seal_size = seal_size

    def select_seals(self, after: int = 0, upto: int | None = None) -> list[Seal]:
        if after >= self.size:
            return []
        end = min(after + self.seal_size, self.size)
        positions = list(range(after + 1, end + 1))
        hashes = [random.randbytes(32) for _ in positions]
        return [Seal(after, end, positions, hashes, b"")]

    def horizon_position(self) -> int:
        return self.size

    def last_seal(self, upto: int | None = None) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def _tree_on(store: str, workdir: Path) -> tuple[Any, Any]:
    if store == "sqlite":
        settings = Settings(store="sqlite", sqlite_path=str(workdir / "tree.db"))
        return SalesLedger(env=settings.event_store_env()), None
    database = fresh_database("proofs")
    dbname = database.__enter__()
    return SalesLedger(env=ledger_env(dbname)), database


def bench_proofs(size: int, samples: int, store: str) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        ledger, database = _tree_on(store, Path(workdir))
        try:
            tree = tree_store_for(ledger.recorder)
            sealer = TreeSealer(SyntheticChain(size), tree, Ed25519PrivateKey.generate())
            started = time.perf_counter()
            while sealer.extend():
                pass
            took = time.perf_counter() - started
            head = tree.latest_head()
            assert head is not None and head.tree_size == size
            print(f"tree of {size} leaves on {store}: built in {took:.1f} s "
                  f"({size / took:,.0f} leaves/s)")
            _time_proofs(tree, head, samples)
        finally:
            ledger.close()
            if database is not None:
                database.__exit__(None, None, None)


def _time_proofs(tree: Any, head: offline.SignedTreeHead, samples: int) -> None:
    proofs = TreeProofs(tree)
    inclusion, consistency = [], []
    for _ in range(samples):
        index = random.randrange(head.tree_size)
        started = time.perf_counter()
        proof = proofs.inclusion(index, head.tree_size)
        inclusion.append(time.perf_counter() - started)
        leaf = tree.leaves_from(index, 1)[0][2]
        offline.verify_inclusion(index, head.tree_size, offline.leaf_hash(leaf), proof,
                                 head.root_bytes)
        old = random.randrange(1, head.tree_size)
        started = time.perf_counter()
        proofs.consistency(old, head.tree_size)
        consistency.append(time.perf_counter() - started)
    print(f"inclusion proof at size {head.tree_size}: {percentiles(inclusion)}")
    print(f"consistency proof to size {head.tree_size}: {percentiles(consistency)}")


def bench_bundle(events: int, samples: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(store="sqlite", sqlite_path=os.path.join(workdir, "ledger.db"))
        ledger = SalesLedger(env=settings.event_store_env())
        deals = prepare_deals(settings.event_store_env(), 1)
        deal, rep = deals[0]
        for n in range(events - 1):
            ledger.log_opportunity_activity(deal, "call", f"call {n}", actor=rep)
        key = Ed25519PrivateKey.generate()
        tree = tree_store_for(ledger.recorder)
        TreeSealer(ledger.recorder, tree, key).seal()  # type: ignore[arg-type]
        bundle = export_bundle(ledger.recorder, tree, UUID(deal))  # type: ignore[arg-type]
        assert len(bundle["events"]) == events
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            check = offline.check_bundle(bundle, key.public_key())
            times.append(time.perf_counter() - started)
            assert check.ok, check.problems
        print(f"offline check of a {events}-event bundle: {percentiles(times)}")
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="bench", required=True)
    lag = commands.add_parser("lag")
    lag.add_argument("--seconds", type=float, default=20)
    lag.add_argument("--clients", type=int, default=8)
    proofs = commands.add_parser("proofs")
    proofs.add_argument("--size", type=int, default=1_000_000)
    proofs.add_argument("--samples", type=int, default=500)
    proofs.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    bundle = commands.add_parser("bundle")
    bundle.add_argument("--events", type=int, default=100)
    bundle.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    if args.bench == "lag":
        bench_lag(args.seconds, args.clients)
    elif args.bench == "proofs":
        bench_proofs(args.size, args.samples, args.store)
    else:
        bench_bundle(args.events, args.samples)


if __name__ == "__main__":
    main()
