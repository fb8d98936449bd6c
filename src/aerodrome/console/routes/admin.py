"""Knowledge, models, audit log and API keys: the platform's inventory pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aerodrome.audit import trail
from aerodrome.config import ROLES, CollectionConfig
from aerodrome.console.web import form, render, runtime, session
from aerodrome.errors import BadRequest, Forbidden
from aerodrome.identity import permissions as perm
from aerodrome.identity import store as identity
from aerodrome.identity.sessions import Session
from aerodrome.jobs.queue import list_jobs
from aerodrome.knowledge import collections as collections_store
from aerodrome.monitoring.dashboard import usage_by_deployment

router = APIRouter(prefix="/console", include_in_schema=False)


# ------------------------------------------------------------------ knowledge


@router.get("/knowledge")
async def knowledge(request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    p = sess.principal
    scope = perm.require(p, "collections.read")
    rows = await run_in_threadpool(collections_store.list_all, runtime(request).engine)
    items = []
    for row in rows:
        spec = CollectionConfig.model_validate(row["spec"])
        if collections_store.visible(p, scope, spec):
            items.append({"spec": spec, **{k: row[k] for k in ("sync_status", "last_sync_at", "last_sync")}})
    return render(request, "knowledge.html", {"collections": items})


@router.get("/knowledge/{name}")
async def collection(
    name: str, request: Request, q: str = "", sess: Session = Depends(session)
) -> HTMLResponse:
    p = sess.principal
    scope = perm.require(p, "collections.read")
    rt = runtime(request)
    row = await run_in_threadpool(collections_store.get, rt.engine, name)
    spec = CollectionConfig.model_validate(row["spec"])
    if not collections_store.visible(p, scope, spec):
        raise Forbidden(f"you may not see the collection {name!r}", code="collection_not_permitted")
    jobs = await run_in_threadpool(lambda: list_jobs(rt.engine, kind="ingest", target=name, limit=5))
    documents = await run_in_threadpool(
        lambda: collections_store.list_documents(rt.engine, name, status=None, limit=200, offset=0)
    )
    results: list[dict[str, Any]] = []
    if q.strip():
        results = await run_in_threadpool(lambda: rt.knowledge.retrieve(p, [name], q.strip(), top_k=5))
    return render(
        request,
        "collection.html",
        {"row": row, "spec": spec, "jobs": jobs, "documents": documents, "q": q, "results": results},
    )


# ------------------------------------------------------------------ models


@router.get("/models")
async def models(request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    p = sess.principal
    perm.require(p, "catalog.read")
    rt = runtime(request)
    cat = rt.catalog
    deployments = []
    for dep in cat.deployments.values():
        item = cat.public_deployment(dep)
        item["circuit"] = rt.router.breakers.state(dep.name)
        deployments.append(item)
    runs_scope = perm.scope_for(p, "runs.read")
    usage = (
        await run_in_threadpool(lambda: usage_by_deployment(rt.engine, p, runs_scope))
        if runs_scope is not None
        else None
    )
    aliases = [cat.public_alias(a) for a in cat.aliases.values()]
    return render(
        request,
        "models.html",
        {"deployments": deployments, "aliases": aliases, "usage": usage, "scope": runs_scope},
    )


# ------------------------------------------------------------------ audit


@router.get("/audit")
async def audit(
    request: Request, action: str = "", actor: str = "", page: int = 0, sess: Session = Depends(session)
) -> HTMLResponse:
    perm.require(sess.principal, "audit.read")
    rt = runtime(request)
    flt = trail.AuditFilter(actor=actor or None, action=action or None, limit=100, offset=max(0, page) * 100)
    events = await run_in_threadpool(trail.list_events, rt.engine, flt)
    verified = await run_in_threadpool(trail.verify, rt.engine)
    return render(
        request,
        "audit.html",
        {"events": events, "verified": verified, "action": action, "actor": actor, "page": page},
    )


# ------------------------------------------------------------------ API keys


async def _keys_page(request: Request, sess: Session, created: dict[str, Any] | None = None) -> HTMLResponse:
    p = sess.principal
    scope = perm.require(p, "keys.read")
    rt = runtime(request)
    keys = await run_in_threadpool(lambda: identity.list_keys(rt.engine, p, scope))
    grantable = [r for r in ROLES if perm.may_grant(p, r)]
    may_write = perm.scope_for(p, "keys.write")
    departments = sorted(rt.departments) if may_write == "all" else [p.department_id]
    return render(
        request,
        "keys.html",
        {
            "keys": list(reversed(keys)),
            "created": created,
            "grantable": grantable,
            "may_write": may_write is not None,
            "departments": departments,
        },
        status=201 if created else 200,
    )


@router.get("/keys")
async def keys(request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    return await _keys_page(request, sess)


@router.post("/keys")
async def create_key(request: Request, sess: Session = Depends(session)) -> Response:
    """The same checks as POST /api/keys; the key is shown once, on the page this answers with."""
    fields = await form(request, sess)
    p = sess.principal
    scope = perm.require(p, "keys.write")
    department = fields.get("department") or p.department_id
    perm.check_department(p, "department" if scope == "own" else scope, department)
    role = fields.get("role") or "user"
    name = fields.get("name", "").strip()
    if not name:
        raise BadRequest("name the key (what it is for)", param="name")
    req = identity.KeyRequest(
        department_id=department,
        role=role,
        name=name[:200],
        user_email=p.name if p.user_id and department == p.department_id else None,
    )
    rt = runtime(request)
    plaintext, record = await run_in_threadpool(
        lambda: identity.create_key(rt.engine, req, actor=p.name, creator=p)
    )
    return await _keys_page(request, sess, created={**record, "key": plaintext})


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, sess: Session = Depends(session)) -> Response:
    await form(request, sess)
    p = sess.principal
    scope = perm.require(p, "keys.write")
    rt = runtime(request)
    record = await run_in_threadpool(
        lambda: identity.revoke_key(rt.engine, key_id, actor=p.name, principal=p, scope=scope)
    )
    rt.authenticator.forget(record["prefix"])
    return RedirectResponse("/console/keys?revoked=" + record["prefix"], status_code=303)
