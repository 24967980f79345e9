"""Signed heads, proofs, bundles and the public key over HTTP, checked as an auditor
would: with the offline verifier and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from commands.ledger import SalesLedger
from services.api.app import create_app
from services.bootstrap import build_ledger
from services.settings import Settings
from services.transparency import offline
from services.transparency.keys import create_signing_key, load_signing_key, register_first_key
from services.transparency.store import tree_store_for
from services.transparency.tree import TreeSealer
from tests.conftest import build_team, wait_for_read_horizon


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, SalesLedger, dict[str, str]]]:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "ledger.db"))
    ledger = build_ledger(settings)
    build_team(ledger)
    key = create_signing_key(tmp_path / "key.pem")
    tree = tree_store_for(ledger.recorder)
    register_first_key(tree, key)
    wait_for_read_horizon(ledger)
    TreeSealer(ledger.recorder, tree, key).seal()  # type: ignore[arg-type]
    token = ledger.issue_token("auditor", actor="admin")[1]
    with TestClient(create_app(settings, ledger)) as client:
        yield client, ledger, {"Authorization": f"Bearer {token}"}
    ledger.close()


def test_an_auditor_checks_heads_and_proofs_with_the_public_key_only(
    world: tuple[TestClient, SalesLedger, dict[str, str]],
) -> None:
    client, ledger, auth = world
    pem = client.get("/.well-known/ledger-public-key")
    assert pem.status_code == 200
    public_key = offline.load_public_key(pem.content)
    keys = {offline.key_id(public_key): public_key}
    latest = client.get("/integrity/heads/latest", headers=auth)
    kept = offline.SignedTreeHead.from_json(latest.json())
    offline.verify_head(kept, keys)
    customer = ledger.register_customer(name="Acme", source="web", actor="rep1")
    wait_for_read_horizon(ledger)
    assert tree_store_for(ledger.recorder).latest_head() == kept  # the API never signs
    proof = client.get("/integrity/inclusion", params={"position": 1}, headers=auth).json()
    offline.verify_inclusion(proof["leaf_index"], proof["tree_size"],
                             offline.leaf_hash(bytes.fromhex(proof["event_hash"])),
                             [bytes.fromhex(p) for p in proof["inclusion_proof"]], kept.root_bytes)
    missing = client.get("/integrity/inclusion", params={"position": customer.position},
                         headers=auth)
    assert missing.status_code == 404 and "not in the tree" in missing.text
    assert client.get("/integrity/heads/99999", headers=auth).status_code == 404
    bad = client.get("/integrity/inclusion", params={"position": "x"}, headers=auth)
    assert bad.status_code == 422


def test_bundles_and_consistency_over_http_verify_offline(
    world: tuple[TestClient, SalesLedger, dict[str, str]], tmp_path: Path
) -> None:
    client, ledger, auth = world
    public_key = offline.load_public_key(client.get("/.well-known/ledger-public-key").content)
    latest = client.get("/integrity/heads/latest", headers=auth)
    kept = offline.SignedTreeHead.from_json(latest.json())
    customer = ledger.register_customer(name="Acme", source="web", actor="rep1")
    wait_for_read_horizon(ledger)
    TreeSealer(ledger.recorder, tree_store_for(ledger.recorder),  # type: ignore[arg-type]
               load_signing_key(tmp_path / "key.pem")).seal()
    answer = client.get("/integrity/consistency", params={"from_size": kept.tree_size},
                        headers=auth).json()
    new = offline.SignedTreeHead.from_json(answer["to_head"])
    offline.verify_consistency(kept.tree_size, new.tree_size, kept.root_bytes, new.root_bytes,
                               [bytes.fromhex(p) for p in answer["proof"]])
    bundle = client.get(f"/integrity/bundles/{customer.aggregate_id}",
                        params={"kept_size": kept.tree_size}, headers=auth).json()
    check = offline.check_bundle(bundle, public_key, kept)
    assert check.ok and check.events == 1, check.problems
