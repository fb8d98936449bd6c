"""Feedback on runs (``POST /v1/feedback``) and its export as JSON Lines (logic in aerodrome.feedback)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.feedback import export, store
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.monitoring.run_lookup import RunLookup
from aerodrome.runtime import Runtime

router = APIRouter(tags=["feedback"])


class FeedbackBody(BaseModel):
    """Checked field by field in aerodrome.feedback.store.validate (400 naming the bad field)."""

    model_config = ConfigDict(extra="forbid")
    run_id: Any = Field(description="the x-aerodrome-run-id of the answer")
    rating: Any = Field(default=None, description='"up", "down" or an integer from 1 to 5')
    flags: Any = Field(default=None, description=f"any of {list(store.FLAGS)}")
    correction: Any = Field(default=None, description="what the answer should have been")
    comment: Any = Field(default=None)


@router.post(
    "/v1/feedback", status_code=201, summary="Rate, flag or correct a run (its caller, or a reviewer)"
)
async def give_feedback(
    body: FeedbackBody, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    fb = store.validate(
        run_id=body.run_id,
        rating=body.rating,
        flags=body.flags,
        correction=body.correction,
        comment=body.comment,
    )
    lookup = RunLookup(rt.engine, rt.writer, rt.reviews.for_run)
    return await run_in_threadpool(store.submit, rt.engine, lookup, p, fb)


@router.get(
    "/api/feedback/export",
    summary="Feedback joined with its runs and reviews, as JSON Lines (application/x-ndjson)",
    response_class=StreamingResponse,
)
async def export_feedback(
    usecase_id: str | None = None,
    department: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> StreamingResponse:
    scope = perm.require(p, "feedback.read")
    flt = export.ExportFilter(usecase_id=usecase_id, department=department, since=since, until=until)
    return StreamingResponse(
        export.lines(rt.engine, p, scope, flt, dict(rt.policies)),
        media_type="application/x-ndjson",
        headers={"content-disposition": 'attachment; filename="feedback.jsonl"'},
    )
