"""Stages and gates, and tasks (timing of business work): the evidence engine's inputs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.errors import BadRequest, Forbidden
from aerodrome.evidence import portfolio, transitions
from aerodrome.evidence import tasks as task_store
from aerodrome.evidence.similar_work import similar_work
from aerodrome.evidence.stages import NEXT
from aerodrome.gateway.request import parse_json_object, read_body
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime
from aerodrome.usecases import access, store

router = APIRouter(tags=["evidence"])


class TransitionRequest(BaseModel):
    to: str | None = Field(default=None, description="the stage to move to; default: the next one")
    decision: str | None = Field(default=None, description="go, redesign or stop (approvers)")
    rationale: str = Field(default="", max_length=4000, description="why (required for decisions)")
    dry_run: bool = Field(default=False, description="only check the gate")


@router.get("/api/usecases/{usecase_id}/stage", summary="Stage, history, locked criteria and the next gate")
async def stage(
    usecase_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    access.require(p, "usecases.read", row, rt.usecases)
    past = await run_in_threadpool(transitions.history, rt.engine, usecase_id)
    nxt = NEXT.get(row["stage"])
    gate = None
    if nxt is not None and row["stage"] != "decision":
        gate = await run_in_threadpool(
            lambda: transitions.advance(
                rt.engine, usecase_id, nxt, actor=p.name, evidence=rt.gate_evidence, dry_run=True
            )
        )
    return {
        "usecase_id": usecase_id,
        "stage": row["stage"],
        "since": row["stage_changed_at"],
        "next": nxt,
        "next_gate": gate,
        **past,
    }


@router.post(
    "/api/usecases/{usecase_id}/transitions", summary="Move a use case to another stage through its gate"
)
async def transition(
    usecase_id: str,
    body: TransitionRequest,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    to = body.to or (NEXT.get(row["stage"]) if row["stage"] != "decision" else None)
    if to is None:
        raise BadRequest(f"from {row['stage']} name the stage (to) and the decision", param="to")
    deciding = body.decision is not None or row["stage"] == "decision" or to == "retired"
    access.require(p, "usecases.decide" if deciding else "usecases.advance", row, rt.usecases)
    if deciding and not body.dry_run and len(body.rationale.strip()) < 10:
        raise BadRequest("a decision needs its rationale (at least 10 characters)", param="rationale")
    if body.decision is not None and body.decision not in ("go", "redesign", "stop"):
        raise BadRequest("decision must be go, redesign or stop", param="decision")
    return await run_in_threadpool(
        lambda: transitions.advance(
            rt.engine,
            usecase_id,
            to,
            actor=p.name,
            rationale=body.rationale.strip(),
            decision=body.decision,
            evidence=rt.gate_evidence,
            dry_run=body.dry_run,
        )
    )


# ----------------------------------------------------------------- tasks


def _task_usecase(rt: Runtime, p: Principal, usecase_id: Any) -> str:
    if not isinstance(usecase_id, str) or not usecase_id:
        raise BadRequest("use_case is required: the id of the use case the task belongs to", param="use_case")
    row = store.get(rt.engine, usecase_id)
    scope = perm.scope_for(p, "usecases.write")
    if scope != "all" and p.department_id not in access.departments_of(row, rt.usecases):
        raise Forbidden(
            f"the use case {usecase_id!r} is not live in your department", code="usecase_not_live"
        )
    return usecase_id


def _default_user(p: Principal) -> str:
    return p.name  # the user's email, or "key:<name>" for a service key


@router.post("/v1/tasks", status_code=201, summary="Log one unit of business work with its timing and group")
async def log_task(
    request: Request, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    raw = await read_body(
        request.stream(), request.headers.get("content-length"), rt.config.server.max_body_bytes
    )
    body = parse_json_object(raw)
    unknown = sorted(
        set(body)
        - {"use_case", "user", "group", "started_at", "finished_at", "duration_s", "outcome", "run_ids"}
    )
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}", param=unknown[0])
    usecase_id = await run_in_threadpool(_task_usecase, rt, p, body.get("use_case"))
    task = task_store.parse_task(
        body, usecase_id=usecase_id, default_user=_default_user(p), now=datetime.now(UTC)
    )
    ids = await run_in_threadpool(
        lambda: task_store.store_tasks(
            rt.engine, [task], source="api", actor=p.name, fallback_department=p.department_id
        )
    )
    return {
        "id": ids[0],
        "object": "task",
        "use_case": usecase_id,
        "group": task.group,
        "user": task.user_ref,
        "duration_s": task.duration_s,
        "finished_at": task.finished_at,
    }


@router.post(
    "/api/usecases/{usecase_id}/tasks/import", status_code=201, summary="Import timed tasks from CSV"
)
async def import_tasks(
    usecase_id: str, request: Request, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    access.require(p, "usecases.write", row, rt.usecases)
    raw = await read_body(
        request.stream(), request.headers.get("content-length"), rt.config.server.max_body_bytes
    )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the CSV must be UTF-8", param="csv") from None
    items = task_store.parse_csv(
        text, usecase_id=usecase_id, default_user=_default_user(p), now=datetime.now(UTC)
    )
    ids = await run_in_threadpool(
        lambda: task_store.store_tasks(
            rt.engine, items, source="csv", actor=p.name, fallback_department=p.department_id
        )
    )
    return {"imported": len(ids), "use_case": usecase_id}


@router.get("/api/usecases/{usecase_id}/tasks", summary="The use case's logged tasks, newest first")
async def list_tasks(
    usecase_id: str,
    group: str | None = None,
    limit: int = Query(default=200, ge=1, le=5000),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    access.require(p, "usecases.read", row, rt.usecases)
    data = await run_in_threadpool(
        lambda: task_store.list_tasks(rt.engine, usecase_id, group=group, limit=limit)
    )
    return {"object": "list", "data": data}


# ----------------------------------------------------------------- portfolio


def _proposal(rt: Runtime, p: Principal, proposal_id: str, action: str) -> dict[str, Any]:
    scope = perm.require(p, action)
    item = portfolio.get(rt.engine, proposal_id)
    if scope != "all" and item["department_id"] != p.department_id:
        raise Forbidden("this proposal belongs to another department")
    return item


@router.post("/api/proposals", status_code=201, summary="Propose a use case; similar work is shown")
async def propose(
    body: portfolio.ProposalIn, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "proposals.write")
    department = body.department or p.department_id
    if scope != "all" and department != p.department_id:
        raise Forbidden("you may propose for your own department only")
    if department not in rt.departments:
        raise BadRequest(f"unknown department {department!r}", param="department")
    item = await run_in_threadpool(
        lambda: portfolio.create(rt.engine, body, department=department, actor=p.name)
    )
    return {**item, "similar": await run_in_threadpool(similar_work, rt, item)}


@router.get(
    "/api/proposals", summary="Proposals (yours, or all); view=matrix groups them by value and complexity"
)
async def proposals(
    view: str | None = Query(default=None, pattern="^(list|matrix)$"),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "proposals.read")
    department = None if scope == "all" else p.department_id
    items = await run_in_threadpool(lambda: portfolio.list_all(rt.engine, department))
    if view == "matrix":
        return {"object": "matrix", "quadrants": portfolio.matrix(items)}
    return {"object": "list", "data": items}


@router.get("/api/proposals/{proposal_id}", summary="One proposal with similar proposals and use cases")
async def proposal(
    proposal_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    item = await run_in_threadpool(_proposal, rt, p, proposal_id, "proposals.read")
    return {**item, "similar": await run_in_threadpool(similar_work, rt, item)}


@router.post(
    "/api/proposals/{proposal_id}/accept", status_code=201, summary="Make the proposal a use case (idea)"
)
async def accept(
    proposal_id: str,
    body: portfolio.Accept,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    await run_in_threadpool(_proposal, rt, p, proposal_id, "usecases.advance")
    return await run_in_threadpool(
        lambda: portfolio.accept(rt.engine, proposal_id, body.usecase_id, actor=p.name)
    )


@router.post("/api/proposals/{proposal_id}/decline", summary="Decline a proposal, with the reason")
async def decline(
    proposal_id: str,
    body: portfolio.Decline,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    await run_in_threadpool(_proposal, rt, p, proposal_id, "usecases.advance")
    return await run_in_threadpool(
        lambda: portfolio.decline(rt.engine, proposal_id, body.reason, actor=p.name)
    )


# ----------------------------------------------------------------- the report

_MEDIA = {
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


@router.get(
    "/api/usecases/{usecase_id}/report", summary="The pilot report: verdicts, red flags, recommendation"
)
async def report(
    usecase_id: str,
    format: str = Query(default="json", pattern="^(json|md|html)$"),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> Response:
    from aerodrome.evidence import report as pilot_report

    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    access.require(p, "usecases.read", row, rt.usecases)
    data = await run_in_threadpool(pilot_report.build, rt.engine, usecase_id)
    text = pilot_report.render(data, format)
    return Response(text, media_type=_MEDIA[format])
