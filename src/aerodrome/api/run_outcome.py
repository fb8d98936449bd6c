"""``GET /v1/runs/{id}``: a run's status and, once review released it, its output (logic in
aerodrome.review.outcome)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from aerodrome.api.deps import principal, runtime
from aerodrome.identity.principal import Principal
from aerodrome.monitoring.run_lookup import RunLookup
from aerodrome.review.outcome import run_outcome
from aerodrome.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["runs"])


@router.get("/runs/{run_id}", summary="One run for its caller: status, review state, released output")
async def get_run_outcome(
    run_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    lookup = RunLookup(rt.engine, rt.writer, rt.reviews.for_run)
    return await run_in_threadpool(run_outcome, lookup, p, run_id)
