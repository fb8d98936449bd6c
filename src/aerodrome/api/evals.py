"""Eval runs through the API: start one (a background job), list, show with per-case results, compare."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.errors import Forbidden
from aerodrome.evals import store
from aerodrome.evals.jobs import enqueue_eval
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime
from aerodrome.usecases.store import UseCaseNotFound

router = APIRouter(prefix="/api/evals", tags=["evals"])


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usecase_id: str = Field(description="the use case whose suite runs")
    deployment: str | None = Field(
        default=None, description="the deployment to pin; default: its alias's first"
    )
    spec_version: int | None = Field(default=None, ge=1, description="default: the current version")


def _departments(rt: Runtime, usecase_id: str) -> list[str] | None:
    try:
        return list(rt.usecases.get(usecase_id).spec.departments)
    except UseCaseNotFound:
        return None


def _check(rt: Runtime, p: Principal, scope: str, usecase_id: str) -> None:
    if scope == "all":
        return
    departments = _departments(rt, usecase_id)
    if departments is None or p.department_id not in departments:
        raise Forbidden(
            f"the use case {usecase_id!r} is not live in your department", code="usecase_not_live"
        )


def check_read(usecase_id: str, p: Principal, rt: Runtime) -> None:
    """403 unless the caller may read the eval runs of the use case (also for /api/jobs)."""
    _check(rt, p, perm.require(p, "evals.read"), usecase_id)


@router.post("/runs", status_code=202, summary="Run a use case's eval suite on a deployment (background job)")
async def start_run(
    body: StartRun, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "evals.run")
    _check(rt, p, scope, body.usecase_id)
    evals = rt.evals
    plan = await run_in_threadpool(
        evals.plan, body.usecase_id, deployment=body.deployment, spec_version=body.spec_version
    )
    run_id, job_id = await run_in_threadpool(enqueue_eval, rt, plan, actor=p.name)
    accepted = await run_in_threadpool(store.get, rt.engine, run_id, results=False)  # as accepted
    return {**accepted, "job_id": job_id}


@router.get("/runs", summary="Eval runs, newest first")
async def list_runs(
    usecase_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "evals.read")
    visible = None
    if scope != "all":
        visible = [u.id for u in rt.usecases.all() if p.department_id in u.spec.departments]
    data = await run_in_threadpool(
        store.list_runs, rt.engine, usecase_ids=visible, usecase_id=usecase_id, limit=limit
    )
    return {"object": "list", "data": data}


@router.get("/runs/{run_id}", summary="An eval run with its per-case results")
async def get_run(
    run_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "evals.read")
    run = await run_in_threadpool(store.get, rt.engine, run_id)
    _check(rt, p, scope, run["usecase_id"])
    return run


@router.get("/compare", summary="Compare two eval runs: pass-rate difference with its interval, regressions")
async def compare(
    base: str = Query(..., description="the eval run compared against (e.g. the current deployment)"),
    candidate: str = Query(..., description="the eval run of the candidate"),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "evals.read")
    result = await run_in_threadpool(rt.evals.compare, base, candidate)
    for side in ("base", "candidate"):
        _check(rt, p, scope, result[side]["usecase_id"])
    return result
