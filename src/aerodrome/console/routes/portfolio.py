"""The portfolio: use cases by stage and department, the value/complexity matrix, proposals; a use
case's page (versions with diffs, gate checklist, criteria, live metrics, the evidence report) and the
decision form for approvers."""

from __future__ import annotations

import difflib
import hashlib
import re
from base64 import b64encode
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aerodrome.console.web import CSP, form, render, runtime, session
from aerodrome.errors import BadRequest
from aerodrome.evidence import portfolio, transitions
from aerodrome.evidence import report as pilot_report
from aerodrome.evidence.gate_and_report import gate_and_report
from aerodrome.evidence.similar_work import similar_work
from aerodrome.evidence.stages import DECISION_TARGET, NEXT, STAGES
from aerodrome.identity import permissions as perm
from aerodrome.identity.sessions import Session
from aerodrome.usecases import access, store

router = APIRouter(prefix="/console/usecases", include_in_schema=False)


@router.get("")
async def overview(request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    p = sess.principal
    scope = perm.require(p, "usecases.read")
    rt = runtime(request)
    rows = await run_in_threadpool(store.list_active, rt.engine)
    by_stage: dict[str, list[dict[str, Any]]] = {s: [] for s in STAGES}
    for row in rows:
        departments = list(row["spec"].get("departments") or []) or [row.get("department_id") or ""]
        if scope != "all" and p.department_id not in departments:
            continue
        by_stage.setdefault(row["stage"], []).append(
            {"id": row["id"], "title": row["spec"].get("title") or row["id"], "departments": departments}
        )
    proposals_scope = perm.scope_for(p, "proposals.read")
    matrix: dict[str, list[dict[str, Any]]] = {}
    proposals: list[dict[str, Any]] = []
    if proposals_scope is not None:
        department = None if proposals_scope == "all" else p.department_id
        proposals = await run_in_threadpool(lambda: portfolio.list_all(rt.engine, department))
        matrix = portfolio.matrix(proposals)
    return render(
        request,
        "portfolio.html",
        {
            "by_stage": by_stage,
            "matrix": matrix,
            "proposals": proposals,
            "may_propose": perm.scope_for(p, "proposals.write") is not None,
        },
    )


@router.get("/proposals/{proposal_id}")
async def proposal(proposal_id: str, request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    rt = runtime(request)
    scope = perm.require(sess.principal, "proposals.read")
    item = await run_in_threadpool(portfolio.get, rt.engine, proposal_id)
    perm.check_department(sess.principal, scope, item["department_id"])
    similar = await run_in_threadpool(similar_work, rt, item)
    return render(request, "proposal.html", {"item": item, "similar": similar})


@router.post("/proposals")
async def propose(request: Request, sess: Session = Depends(session)) -> Response:
    fields = await form(request, sess)
    p = sess.principal
    perm.require(p, "proposals.write")
    try:
        body = portfolio.ProposalIn(
            title=fields.get("title", ""),
            problem=fields.get("problem", ""),
            workflow=fields.get("workflow", ""),
            users=fields.get("users", ""),
            value=int(fields.get("value") or 0),
            complexity=int(fields.get("complexity") or 0),
        )
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"the proposal is not complete: {exc}", code="invalid_proposal") from None
    rt = runtime(request)
    item = await run_in_threadpool(
        lambda: portfolio.create(rt.engine, body, department=p.department_id, actor=p.name)
    )
    return RedirectResponse(f"/console/usecases/proposals/{item['id']}", status_code=303)


def _spec_text(engine: Any, usecase_id: str, number: int) -> str:
    return yaml.safe_dump(
        store.version(engine, usecase_id, number)["spec"], sort_keys=False, allow_unicode=True
    )


def _diff(engine: Any, usecase_id: str, number: int) -> str:
    old = _spec_text(engine, usecase_id, number - 1) if number > 1 else ""
    new = _spec_text(engine, usecase_id, number)
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"version {number - 1}",
            f"version {number}",
        )
    )


def _title_and_criteria(rt: Any, usecase_id: str) -> tuple[str, list[str]]:
    try:
        spec = rt.usecases.get(usecase_id).spec
    except store.UseCaseNotFound:
        return usecase_id, []
    return spec.title, [
        f"{c.label()} {'≥' if c.at_least is not None else '≤'} {c.threshold:g}"
        + (f" (at least {c.min_samples} samples)" if c.min_samples else "")
        for c in spec.success_criteria
    ]


@router.get("/{usecase_id}")
async def usecase_page(
    usecase_id: str, request: Request, diff: int | None = None, sess: Session = Depends(session)
) -> HTMLResponse:
    """The page itself is quick; its gate checklist, verdicts and report come from /evidence."""
    rt = runtime(request)
    p = sess.principal
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    access.require(p, "usecases.read", row, rt.usecases)
    past = await run_in_threadpool(transitions.history, rt.engine, usecase_id)
    versions = (
        await run_in_threadpool(store.versions, rt.engine, usecase_id) if row["current_version"] else []
    )
    shown = diff if diff is not None else row["current_version"]
    diff_text = await run_in_threadpool(_diff, rt.engine, usecase_id, shown) if shown else ""
    title, criteria = _title_and_criteria(rt, usecase_id)
    return render(
        request,
        "usecase.html",
        {
            "row": row,
            "title": title,
            "criteria": criteria,
            "history": past,
            "versions": versions,
            "shown": shown,
            "diff": diff_text,
            "may_decide": perm.scope_for(p, "usecases.decide") is not None,
            "decisions": DECISION_TARGET,
        },
    )


@router.get("/{usecase_id}/evidence")
async def evidence(usecase_id: str, request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    """The next gate's checklist, the criteria's verdicts, live metrics and the report's summary
    (the evidence engine's work: seconds on large run tables, so loaded after the page)."""
    rt = runtime(request)
    p = sess.principal
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    access.require(p, "usecases.read", row, rt.usecases)
    tab = await run_in_threadpool(
        lambda: gate_and_report(rt.engine, usecase_id, actor=p.name, evidence=rt.gate_evidence)
    )
    context = {
        "row": row,
        "next": tab.next,
        "gate": tab.gate,
        "report": tab.report,
        "report_error": tab.report_error,
        "may_advance": perm.scope_for(p, "usecases.advance") is not None,
    }
    if request.headers.get("hx-request"):
        return render(request, "_usecase_evidence.html", context)
    return render(request, "usecase_evidence.html", context)


_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


@router.get("/{usecase_id}/report")
async def report_page(usecase_id: str, request: Request, sess: Session = Depends(session)) -> Response:
    """The evidence report's own HTML (as GET /api/usecases/{id}/report?format=html), its inline
    style allowed by hash and nothing else."""
    rt = runtime(request)
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    access.require(sess.principal, "usecases.read", row, rt.usecases)
    data = await run_in_threadpool(pilot_report.build, rt.engine, usecase_id)
    html = pilot_report.render(data, "html")
    hashes = " ".join(
        "'sha256-" + b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode() + "'"
        for m in _STYLE.finditer(html)
    )
    csp = CSP.replace("style-src 'self'", f"style-src 'self' {hashes}")
    return HTMLResponse(html, headers={"content-security-policy": csp, "cache-control": "no-store"})


@router.post("/{usecase_id}/transition")
async def transition(usecase_id: str, request: Request, sess: Session = Depends(session)) -> Response:
    """The same checks as POST /api/usecases/{id}/transitions: a decision (approvers) or the next gate."""
    fields = await form(request, sess)
    rt = runtime(request)
    p = sess.principal
    row = await run_in_threadpool(store.get, rt.engine, usecase_id)
    decision = fields.get("decision") or None
    rationale = fields.get("rationale", "").strip()
    to: str | None
    if decision is not None:
        if decision not in DECISION_TARGET:
            raise BadRequest("decision must be go, redesign or stop", param="decision")
        to = DECISION_TARGET[decision]
    else:
        to = NEXT.get(row["stage"]) if row["stage"] != "decision" else None
    if to is None:
        raise BadRequest(f"from {row['stage']} a decision is needed", param="decision")
    target: str = to
    deciding = decision is not None or row["stage"] == "decision" or to == "retired"
    access.require(p, "usecases.decide" if deciding else "usecases.advance", row, rt.usecases)
    if deciding and len(rationale) < 10:
        raise BadRequest("a decision needs its rationale (at least 10 characters)", param="rationale")
    await run_in_threadpool(
        lambda: transitions.advance(
            rt.engine,
            usecase_id,
            target,
            actor=p.name,
            rationale=rationale,
            decision=decision,
            evidence=rt.gate_evidence,
        )
    )
    return RedirectResponse(f"/console/usecases/{usecase_id}?moved={target}", status_code=303)
