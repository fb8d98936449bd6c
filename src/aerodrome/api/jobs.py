"""Background jobs: their status, progress, attempts and errors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from aerodrome.api.deps import principal, runtime
from aerodrome.api.knowledge import get_visible
from aerodrome.errors import BadRequest
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.jobs.queue import STATUSES, get_job, list_jobs
from aerodrome.runtime import Runtime

router = APIRouter(prefix="/api", tags=["jobs"])


@router.get("/jobs", summary="Jobs, newest first: ingestion, rollups, retention, evaluations")
async def jobs(
    kind: str | None = None,
    target: str | None = None,
    status: str | None = Query(default=None, description="queued, running, succeeded or failed"),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    perm.require(p, "jobs.read")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"unknown job status {status!r}; statuses are {list(STATUSES)}", param="status")
    data = await run_in_threadpool(
        list_jobs, rt.engine, kind=kind, target=target, status=status, limit=limit, offset=offset
    )
    return {"object": "list", "data": data}


@router.get("/jobs/{job_id}", summary="A job's status, progress, attempts and last error")
async def job(
    job_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    found = await run_in_threadpool(get_job, rt.engine, job_id)
    if perm.scope_for(p, "jobs.read") is None:
        # without jobs.read, those who may read what a job works on may follow it
        if found["kind"] == "ingest":
            await get_visible(found["target"], p, rt)  # a collection's sync
        elif found["kind"] == "redteam":  # its result is a red-team report
            from aerodrome.api.redteam import check_read

            check_read(found["target"], p, rt)
        elif found["kind"] == "eval":
            from aerodrome.api.evals import check_read as check_eval_read

            check_eval_read(found["target"], p, rt)
        else:
            perm.require(p, "jobs.read")
    return found


@router.post("/jobs/{job_id}/retry", summary="Queue a failed job again, with all its attempts")
async def retry(
    job_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    perm.require(p, "jobs.write")
    await run_in_threadpool(rt.jobs.retry, job_id, actor=p.name)
    return await run_in_threadpool(get_job, rt.engine, job_id)
