"""Integrity: signed digests of the ledger and proofs that nothing up to one changed;
a deal's history with the chain status of every event."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from services.api.csv_export import Format, report_response
from services.api.dependencies import LedgerDep
from services.api.security import CurrentActor
from services.api.time_params import AsOf
from services.history import history_with_chain
from services.integrity import (
    DIGEST_ALGORITHM,
    Digest,
    DigestSigner,
    check_digest,
    issue_digest,
)

router = APIRouter(tags=["integrity"])


class LedgerDigest(BaseModel):
    """The ledger at a position: its ledger-chain hash, signed (HMAC-SHA256) by the ledger.
    Keep it; later ``POST /integrity/verify`` proves nothing up to it has changed."""

    position: int = Field(examples=[1042])
    ledger_hash: str = Field(examples=["9c2b…"])
    events: int = Field(examples=[1040])
    issued_at: str = Field(examples=["2026-05-01T12:00:00+00:00"])
    algorithm: str = Field(default=DIGEST_ALGORITHM, examples=[DIGEST_ALGORITHM])
    key_id: str = Field(examples=["3f2a9c0d1e4b5a67"])
    signature: str = Field(examples=["5d1e…"])


class DigestVerification(BaseModel):
    """Whether a stored digest is authentic and the ledger up to it is unchanged."""

    authentic: bool
    unchanged: bool
    position: int
    recomputed_hash: str | None
    events: int
    reason: str


class HistoryEntry(BaseModel):
    """One event of a deal's history, with the status of its hash chain link."""

    version: int
    timestamp: str
    actor: str
    event_type: str
    changes: dict[str, Any]
    chain: str = Field(examples=["ok"], description='"ok" or the kind of break found there')


def digest_signer(request: Request) -> DigestSigner:
    """The app's signer: ``LEDGER_INTEGRITY_KEY``, or a random key for this process."""
    signer: DigestSigner | None = getattr(request.app.state, "digest_signer", None)
    if signer is None:
        key = request.app.state.context.settings.integrity_key.encode() or secrets.token_bytes(32)
        signer = DigestSigner(key)
        request.app.state.digest_signer = signer
    return signer


@router.get("/integrity/digest", response_model=LedgerDigest)
def get_digest(
    request: Request,
    ledger: LedgerDep,
    actor: CurrentActor,
    position: Annotated[
        int | None, Query(ge=0, description="default: the latest final position")
    ] = None,
) -> LedgerDigest:
    """A signed, timestamped digest of the ledger up to a position."""
    try:
        digest = issue_digest(ledger.recorder, digest_signer(request), position)  # type: ignore[arg-type]
    except ValueError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from None
    return LedgerDigest(**asdict(digest))


@router.post("/integrity/verify", response_model=DigestVerification)
def verify_digest(
    body: LedgerDigest, request: Request, ledger: LedgerDep, actor: CurrentActor
) -> DigestVerification:
    """Prove everything up to a stored digest's position is unchanged; 422 if forged."""
    check = check_digest(ledger.recorder, digest_signer(request), Digest(**body.model_dump()))  # type: ignore[arg-type]
    if not check.authentic:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=check.reason)
    return DigestVerification(**asdict(check))


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

