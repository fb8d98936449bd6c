"""Run records and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from aerodrome.api.deps import principal, runtime
from aerodrome.audit import trail
from aerodrome.errors import NotFound
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.monitoring import runs
from aerodrome.runtime import Runtime

router = APIRouter(prefix="/api", tags=["runs"])


@router.get("/runs", summary="Run records, newest first, within your permission scope")
async def list_runs(
    department: str | None = None,
    alias: str | None = None,
    deployment: str | None = None,
    key_id: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "runs.read")
    flt = runs.RunFilter(
        department=department,
        alias=alias,
        deployment=deployment,
        key_id=key_id,
        status=status,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return await run_in_threadpool(runs.list_runs, rt.engine, p, scope, flt)


@router.get("/runs/{run_id}")
async def get_run(
    run_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "runs.read")
    run = await run_in_threadpool(runs.get_run, rt.engine, run_id)
    visible = run is not None and (
        scope == "all"
        or (scope == "department" and run["department_id"] == p.department_id)
        or (scope == "own" and (run["key_id"] == p.key_id or (p.user_id and run["user_id"] == p.user_id)))
    )
    if not visible or run is None:
        raise NotFound(f"no run {run_id!r} that you may see", code="run_not_found")
    return run


@router.get("/audit", summary="Audit events, newest first, with filters")
async def audit_events(
    actor: str | None = None,
    action: str | None = Query(default=None, description='exact, or a prefix ending in "." such as "key."'),
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    perm.require(p, "audit.read")
    flt = trail.AuditFilter(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return await run_in_threadpool(trail.list_events, rt.engine, flt)


@router.get("/audit/verify", summary="Check the hash chain of the audit trail")
async def audit_verify(p: Principal = Depends(principal), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    perm.require(p, "audit.read")
    result = await run_in_threadpool(trail.verify, rt.engine)
    newest = await run_in_threadpool(trail.head, rt.engine)
    return {
        "head": newest,
        "ok": result.ok,
        "events": result.events,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
    }
