"""Collections, sync jobs, quality reports and retrieval (/v1/retrieve)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.config import CollectionConfig
from aerodrome.errors import Forbidden
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.jobs.queue import get_job, list_jobs
from aerodrome.knowledge import collections as store
from aerodrome.runtime import Runtime

router = APIRouter(tags=["knowledge"])


class RetrieveRequest(BaseModel):
    collections: list[str] | None = Field(
        default=None, description="collections to search; all you may read when absent"
    )
    query: str = Field(min_length=1, max_length=8000)
    top_k: int = Field(default=10, ge=1, le=100)
    filters: dict[str, Any] | None = Field(default=None, description='e.g. {"document_id": "hr/leave.md"}')
    min_score: float | None = Field(
        default=None, description="drop results under this score (say 'not found')"
    )
    mode: str = Field(default="hybrid", description="hybrid, lexical or dense")


def _check_write(p: Principal, scope: str, spec: CollectionConfig) -> None:
    if scope == "all":
        return
    depts = set(spec.readers.departments)
    if "*" in depts or depts - {p.department_id} or spec.readers.roles:
        raise Forbidden(
            "department administrators manage only collections read by their own department alone"
        )


def _public(row: dict[str, Any], p: Principal) -> dict[str, Any]:
    spec = CollectionConfig.model_validate(row["spec"])
    return {
        **spec.model_dump(mode="json"),
        "origin": row["origin"],
        "embedding_model": row["embedding_model"],
        "sync_status": row["sync_status"],
        "last_sync_at": row["last_sync_at"],
        "last_sync": row["last_sync"],
        "readable": store.can_read(spec, p),
    }


@router.get("/api/collections")
async def list_collections(
    p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "collections.read")
    rows = await run_in_threadpool(store.list_all, rt.engine)
    data = [
        _public(r, p) for r in rows if store.visible(p, scope, CollectionConfig.model_validate(r["spec"]))
    ]
    return {"object": "list", "data": data}


@router.post("/api/collections", status_code=201)
async def put_collection(
    body: CollectionConfig, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "collections.write")
    _check_write(p, scope, body)
    await run_in_threadpool(store.upsert, rt.engine, body, origin="api", actor=p.name)
    return _public(await run_in_threadpool(store.get, rt.engine, body.name), p)


async def get_visible(
    name: str, p: Principal, rt: Runtime, action: str = "collections.read"
) -> dict[str, Any]:
    scope = perm.require(p, action)
    row = await run_in_threadpool(store.get, rt.engine, name)
    spec = CollectionConfig.model_validate(row["spec"])
    if not store.visible(p, scope, spec):
        raise Forbidden(f"you may not see the collection {name!r}", code="collection_not_permitted")
    if action == "collections.write":
        _check_write(p, scope, spec)
    return row


@router.get("/api/collections/{name}")
async def get_collection(
    name: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    return _public(await get_visible(name, p, rt), p)


@router.delete("/api/collections/{name}")
async def remove_collection(
    name: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    await get_visible(name, p, rt, "collections.write")
    await run_in_threadpool(store.remove, rt.engine, name, actor=p.name)
    await run_in_threadpool(rt.knowledge.index.drop_collection, name)
    return {"deleted": True, "name": name}


@router.post("/api/collections/{name}/sync", status_code=202, summary="Start an incremental sync as a job")
async def sync_collection(
    name: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    await get_visible(name, p, rt, "collections.write")
    job_id = await run_in_threadpool(rt.jobs.enqueue, "ingest", name, created_by=p.name)
    return await run_in_threadpool(get_job, rt.engine, job_id)


@router.get("/api/collections/{name}/jobs")
async def collection_jobs(
    name: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    await get_visible(name, p, rt)
    return {
        "object": "list",
        "data": await run_in_threadpool(list_jobs, rt.engine, kind="ingest", target=name),
    }


@router.get("/api/collections/{name}/quality", summary="The data-quality report of the last sync")
async def quality(
    name: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    row = await get_visible(name, p, rt)
    return {"collection": name, "synced_at": row["last_sync_at"], "report": row["quality"]}


@router.get("/api/collections/{name}/documents")
async def documents(
    name: str,
    status: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    await get_visible(name, p, rt)
    data = await run_in_threadpool(
        store.list_documents, rt.engine, name, status=status, limit=limit, offset=offset
    )
    return {"object": "list", "data": data}


@router.post("/v1/retrieve", summary="Hybrid retrieval over the collections you may read")
async def retrieve(
    body: RetrieveRequest, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    results = await run_in_threadpool(
        rt.knowledge.retrieve,
        p,
        body.collections,
        body.query,
        top_k=body.top_k,
        filters=body.filters,
        min_score=body.min_score,
        mode=body.mode,
    )
    return {"object": "list", "query": body.query, "results": results}
