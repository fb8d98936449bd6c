"""The model catalog: providers, deployments and aliases, read and changed."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends
from fastapi.concurrency import run_in_threadpool

from aerodrome.api.deps import principal, runtime
from aerodrome.catalog import store
from aerodrome.errors import BadRequest, NotFound
from aerodrome.evals.gate import guard as upgrade_gate
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime

router = APIRouter(prefix="/api/catalog", tags=["catalog"])
Kind = Literal["providers", "deployments", "aliases"]
_SINGULAR = {"providers": "provider", "deployments": "deployment", "aliases": "alias"}


def _view(rt: Runtime, kind: str) -> list[dict[str, Any]]:
    cat = rt.catalog
    if kind == "providers":
        return [cat.public_provider(p) for p in cat.providers.values()]
    if kind == "deployments":
        out = []
        for d in cat.deployments.values():
            item = cat.public_deployment(d)
            item["circuit"] = rt.router.breakers.state(d.name)
            out.append(item)
        return out
    return [cat.public_alias(a) for a in cat.aliases.values()]


@router.get("/{kind}")
async def list_entries(
    kind: Kind, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    perm.require(p, "catalog.read")
    return {"object": "list", "data": _view(rt, kind)}


@router.get("/{kind}/{name}")
async def get_entry(
    kind: Kind, name: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    perm.require(p, "catalog.read")
    for item in _view(rt, kind):
        if item["name"] == name:
            return item
    raise NotFound(f"no {_SINGULAR[kind]} {name!r} in the catalog")


@router.put("/{kind}/{name}", summary="Add or replace a catalog entry (secrets only as references)")
async def put_entry(
    kind: Kind,
    name: str,
    spec: dict[str, Any] = Body(...),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    perm.require(p, "catalog.write")
    if spec.get("name", name) != name:
        raise BadRequest("the name in the body differs from the name in the path", param="name")
    spec = {**spec, "name": name}
    catalog = await run_in_threadpool(
        store.put_entry,
        rt.engine,
        rt.config,
        _SINGULAR[kind],
        spec,
        actor=p.name,
        guard=upgrade_gate(rt.engine, rt.config, actor=p.name),
    )
    rt.set_catalog(catalog)
    return await get_entry(kind, name, p, rt)


@router.delete("/{kind}/{name}")
async def delete_entry(
    kind: Kind, name: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    perm.require(p, "catalog.write")
    catalog = await run_in_threadpool(
        store.delete_entry,
        rt.engine,
        rt.config,
        _SINGULAR[kind],
        name,
        actor=p.name,
        guard=upgrade_gate(rt.engine, rt.config, actor=p.name),
    )
    rt.set_catalog(catalog)
    return {"deleted": True, "kind": _SINGULAR[kind], "name": name}
