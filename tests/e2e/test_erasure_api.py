"""Erasure over HTTP: an admin erases a customer; reads, search and history show it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.e2e.test_api_commands_and_queries import Api, rep, tokens_and_client

__all__ = ["rep", "tokens_and_client"]  # the fixtures, shared with the commands' tests

ERASURE = {"reason": "data subject's request of 2026-12-01"}


def test_an_admin_erases_and_every_read_shows_erased(
    rep: Api, tokens_and_client: tuple[dict[str, str], TestClient]
) -> None:
    tokens, client = tokens_and_client
    admin = Api(client, tokens["admin"])
    created = rep.post(
        "/customers",
        {
            "name": "Wang Fang Imports",
            "source": "web",
            "phone": "+86 137 0000 1111",
            "email": "wang.fang@example.cn",
            "owner_id": "rep",
        },
        status=201,
    )
    customer_id = created["aggregate_id"]
    found = rep.get("/customers", q="wang fang", min_position=created["position"])["items"]
    assert [c["customer_id"] for c in found] == [customer_id]

    rep.post(f"/customers/{customer_id}/erasure", ERASURE, status=403)
    erased = admin.post(f"/customers/{customer_id}/erasure", ERASURE)
    admin.post(f"/customers/{customer_id}/erasure", ERASURE, status=422)

    state = rep.get(f"/customers/{customer_id}")["state"]
    assert (state["name"], state["phone"], state["email"]) == ("[erased]", "[erased]", "[erased]")
    assert state["owner_id"] == "rep" and state["erased"] is True
    assert rep.get("/customers", q="wang fang", min_position=erased["position"])["items"] == []
    listed = rep.get("/customers", min_position=erased["position"])["items"]
    assert [c["name"] for c in listed if c["customer_id"] == customer_id] == ["[erased]"]
    assert "Wang" not in str(admin.get("/audit", aggregate_id=customer_id))
