"""Dashboards: adoption, quality, efficiency, cost, latency and errors, with filters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from aerodrome.console.web import render, runtime, session
from aerodrome.errors import BadRequest
from aerodrome.identity import permissions as perm
from aerodrome.identity.sessions import Session
from aerodrome.monitoring.dashboard import WINDOWS, DashboardFilter, figures

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/dashboards")
async def dashboards(
    request: Request,
    days: int = 30,
    department: str | None = None,
    usecase: str | None = None,
    sess: Session = Depends(session),
) -> HTMLResponse:
    scope = perm.require(sess.principal, "runs.read")
    if days not in WINDOWS:
        raise BadRequest(f"the window is one of {list(WINDOWS)} days", param="days")
    rt = runtime(request)
    if scope != "all":
        department = None  # the scope already holds the view to the caller's department or runs
    flt = DashboardFilter(days=days, department=department or None, usecase_id=usecase or None)
    data = await run_in_threadpool(figures, rt.engine, sess.principal, scope, flt)
    departments = sorted(rt.departments) if scope == "all" else [sess.principal.department_id]
    usecases = sorted(u.id for u in rt.usecases.all())
    chart = {
        "days": data["days"],
        "adoption": data["adoption"],
        "operations": data["operations"],
        "cost": {k: v[:10] for k, v in data["cost"].items()},
        "flags": data["quality"]["flags"],
    }
    return render(
        request,
        "dashboards.html",
        {
            "d": data,
            "chart": chart,
            "flt": flt,
            "scope": scope,
            "windows": WINDOWS,
            "departments": departments,
            "usecases": usecases,
        },
    )
