"""The human review queue: list, claim, approve, edit, reject (logic in aerodrome.review)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.review.decisions import MAX_NOTE_CHARS, parse_statuses
from aerodrome.review.queue import ReviewFilter
from aerodrome.runtime import Runtime

router = APIRouter(prefix="/api/reviews", tags=["reviews"])


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class EditBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: Any = Field(description="the corrected output: a string, or an object when the draft is one")
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(
        description="why the draft was rejected (shown to the caller)", max_length=MAX_NOTE_CHARS
    )


@router.get("", summary="Review items in your scope, oldest first (pending and claimed by default)")
async def list_reviews(
    status: list[str] | None = Query(
        default=None, description="pending, claimed, approved, edited, rejected"
    ),
    usecase_id: str | None = None,
    department: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "reviews.read")
    flt = ReviewFilter(
        statuses=parse_statuses(status),
        usecase_id=usecase_id,
        department=department,
        limit=limit,
        offset=offset,
    )
    return await run_in_threadpool(rt.reviews.list, p, scope, flt)


@router.post("/next", summary="Claim the oldest pending item in your scope ({'item': null} when none)")
async def claim_next(
    usecase_id: str | None = None,
    department: str | None = None,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "reviews.decide")
    item = await run_in_threadpool(
        lambda: rt.reviews.next(p, scope, usecase_id=usecase_id, department=department)
    )
    return {"item": item}


@router.get("/{review_id}")
async def get_review(
    review_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "reviews.read")
    return await run_in_threadpool(rt.reviews.get, review_id, p, scope)


@router.post("/{review_id}/claim")
async def claim(
    review_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "reviews.decide")
    return await run_in_threadpool(rt.reviews.claim, review_id, p, scope)


@router.post("/{review_id}/approve", summary="Release the draft as it is")
async def approve(
    review_id: str,
    body: ApproveBody | None = None,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "reviews.decide")
    note = body.note if body else None
    return await run_in_threadpool(lambda: rt.reviews.approve(review_id, p, scope, note=note))


@router.post("/{review_id}/edit", summary="Release a corrected output (kept as a correction)")
async def edit(
    review_id: str, body: EditBody, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "reviews.decide")
    return await run_in_threadpool(
        lambda: rt.reviews.edit(review_id, p, scope, output=body.output, note=body.note)
    )


@router.post("/{review_id}/reject", summary="Withhold the draft; the note tells the caller why")
async def reject(
    review_id: str, body: RejectBody, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "reviews.decide")
    return await run_in_threadpool(lambda: rt.reviews.reject(review_id, p, scope, note=body.note))
