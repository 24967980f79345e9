"""Integrity: signed tree heads with their cosignatures, inclusion and consistency proofs,
audit bundles, the ledger's public key; a deal's history with the chain status of every
event."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID

from fastapi import HTTPException, Path, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from services.api.csv_export import Format, report_response
from services.api.dependencies import LedgerDep
from services.api.routes import LedgerRouter
from services.api.security import CurrentActor
from services.api.time_params import AsOf
from services.history import history_with_chain
from services.transparency.bundle import (
    NotInTreeError,
    consistency_between,
    export_bundle,
    head_at,
    inclusion_by_position,
)
from services.transparency.keys import current_public_key_pem
from services.transparency.store import tree_store_for

router = LedgerRouter(tags=["integrity"])
MAX_POSITION = 2**63 - 1
"""The largest position or tree size a database column holds."""
public_router = LedgerRouter(tags=["integrity"])


class Cosignature(BaseModel):
    """A witness's Ed25519 signature over a head it checked extends the ones before."""

    witness_key_id: str
    timestamp_ms: int
    signature: str


class TreeHead(BaseModel):
    """The Merkle tree over the first ``tree_size`` events, signed by the ledger (Ed25519)
    and cosigned by witnesses. Keep it; later proofs are checked against it."""

    tree_size: int = Field(examples=[1040])
    root: str = Field(examples=["9c2b…"])
    timestamp_ms: int
    last_position: int
    key_id: str = Field(examples=["3f2a9c0d1e4b5a67"])
    signature: str
    cosignatures: list[Cosignature] = []


class InclusionProof(BaseModel):
    """The proof (RFC 9162 §2.1.3) that the event at ``position`` is leaf ``leaf_index``."""

    position: int
    leaf_index: int
    event_hash: str
    tree_size: int
    inclusion_proof: list[str]
    head: dict[str, Any]


class ConsistencyProof(BaseModel):
    """The proof (RFC 9162 §2.1.4) that the head of ``to_size`` extends that of ``from_size``."""

    from_size: int
    to_size: int
    proof: list[str]
    from_head: dict[str, Any] | None = Field(description="the signed head of from_size, if any")
    to_head: dict[str, Any]


def _not_found(error: NotInTreeError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error))


@router.get("/integrity/heads/latest", response_model=TreeHead)
def get_latest_head(ledger: LedgerDep, actor: CurrentActor) -> TreeHead:
    """The latest signed tree head, with its witnesses' cosignatures."""
    return _head(ledger, None)


@router.get("/integrity/heads/{tree_size}", response_model=TreeHead)
def get_head(
    tree_size: Annotated[int, Path(ge=0, le=MAX_POSITION)], ledger: LedgerDep, actor: CurrentActor
) -> TreeHead:
    """The signed tree head of a given size, with its cosignatures."""
    return _head(ledger, tree_size)


def latest_head(ledger: Any) -> TreeHead:
    """The latest signed tree head with its cosignatures (404 before the first seal)."""
    return _head(ledger, None)


def _head(ledger: Any, tree_size: int | None) -> TreeHead:
    tree = tree_store_for(ledger.recorder)
    try:
        head = head_at(tree, tree_size)
    except NotInTreeError as error:
        raise _not_found(error) from None
    cosignatures = [Cosignature(**asdict(c)) for c in tree.cosignatures(head.tree_size)]
    return TreeHead(**asdict(head), cosignatures=cosignatures)


@router.get("/integrity/inclusion", response_model=InclusionProof)
def get_inclusion(
    ledger: LedgerDep,
    actor: CurrentActor,
    position: Annotated[
        int, Query(ge=1, le=MAX_POSITION, description="the event's ledger position")
    ],
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="default: the latest head")
    ] = None,
) -> InclusionProof:
    """The inclusion proof of the event at a position against a signed head."""
    try:
        proof = inclusion_by_position(tree_store_for(ledger.recorder), position, tree_size)
    except NotInTreeError as error:
        raise _not_found(error) from None
    return InclusionProof(**proof)


@router.get("/integrity/consistency", response_model=ConsistencyProof)
def get_consistency(
    ledger: LedgerDep,
    actor: CurrentActor,
    from_size: Annotated[
        int, Query(ge=1, le=MAX_POSITION, description="the size of the kept head")
    ],
    to_size: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="default: the latest head")
    ] = None,
) -> ConsistencyProof:
    """The consistency proof that a later signed head extends an earlier one."""
    try:
        proof = consistency_between(tree_store_for(ledger.recorder), from_size, to_size)
    except NotInTreeError as error:
        raise _not_found(error) from None
    return ConsistencyProof(**proof)


@router.get("/integrity/bundles/{aggregate_id}")
def get_bundle(
    aggregate_id: UUID,
    ledger: LedgerDep,
    actor: CurrentActor,
    kept_size: Annotated[list[int] | None, Query(description="sizes of kept heads")] = None,
) -> dict[str, Any]:
    """One aggregate's audit bundle (events, hashes, inclusion proofs, signed head, key
    rotations, consistency proofs from kept heads), for ``salesledger audit check``."""
    try:
        return export_bundle(
            ledger.recorder,  # type: ignore[arg-type]
            tree_store_for(ledger.recorder), aggregate_id, kept_size or [],
        )
    except NotInTreeError as error:
        raise _not_found(error) from None


@public_router.get(
    "/.well-known/ledger-public-key", response_class=PlainTextResponse, include_in_schema=False
)
def get_public_key(ledger: LedgerDep) -> PlainTextResponse:
    """The ledger's current Ed25519 public key (PEM); public, no token needed."""
    pem = current_public_key_pem(tree_store_for(ledger.recorder))
    if pem is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no signing key yet")
    return PlainTextResponse(pem, media_type="application/x-pem-file")


class HistoryEntry(BaseModel):
    """One event of a deal's history, with the status of its hash chain link."""

    version: int
    timestamp: str
    actor: str
    event_type: str
    changes: dict[str, Any]
    correlation_id: str | None = Field(
        None, description="the business transaction or trace the command belonged to"
    )
    causation_id: str | None = Field(None, description="the request that caused the event")
    chain: str = Field(examples=["ok"], description='"ok" or the kind of break found there')


@router.get("/opportunities/{opportunity_id}/history", response_model=list[HistoryEntry])
def get_opportunity_history(
    opportunity_id: str,
    request: Request,
    ledger: LedgerDep,
    actor: CurrentActor,
    as_of: AsOf,
    format: Format = None,
) -> Any:
    """Every event of the deal (up to ``as_of``) with the status of its chain link."""
    entries = [HistoryEntry(**e) for e in history_with_chain(ledger, opportunity_id, as_of)]
    return report_response(request, ledger, actor, format, entries)

