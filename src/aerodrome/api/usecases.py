"""Use-case specs through the API: list, show, versions, validate, create / change, remove."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from aerodrome.api.deps import principal, runtime
from aerodrome.errors import Forbidden
from aerodrome.gateway.request import parse_json_object, read_body
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime
from aerodrome.usecases import store
from aerodrome.usecases.registry import LiveUseCase
from aerodrome.usecases.submission import InvalidSpec, check_submission

router = APIRouter(tags=["usecases"])


def _visible(p: Principal, scope: str, departments: list[str]) -> bool:
    return scope == "all" or p.department_id in departments


def _summary(live: LiveUseCase) -> dict[str, Any]:
    spec = live.spec
    return {
        "id": live.id,
        "title": spec.title,
        "version": live.version,
        "origin": live.origin,
        "source": live.source,
        "departments": spec.departments,
        "risk_tier": spec.risk_tier,
        "model": spec.model,
        "owners": spec.owners.model_dump(),
        "inputs": {name: i.model_dump(exclude_defaults=True) for name, i in spec.inputs.items()},
        "main_input": spec.main_input(),
        "output_format": spec.output.format,
        "collections": spec.retrieval.collections if spec.retrieval else [],
        "review": spec.review.model_dump(),
        "load_error": live.load_error,
    }


def _check_write(p: Principal, scope: str, departments: list[str]) -> None:
    if scope != "all" and set(departments) - {p.department_id}:
        raise Forbidden("you may manage only use cases live in your own department alone")


async def _body(request: Request, rt: Runtime) -> dict[str, Any]:
    raw = await read_body(
        request.stream(), request.headers.get("content-length"), rt.config.server.max_body_bytes
    )
    return parse_json_object(raw)


@router.get("/api/usecases", summary="The use cases you may see, with their current version")
async def list_usecases(p: Principal = Depends(principal), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    scope = perm.require(p, "usecases.read")
    data = [_summary(u) for u in rt.usecases.all() if _visible(p, scope, u.spec.departments)]
    out: dict[str, Any] = {"object": "list", "data": data}
    if scope == "all":
        out["folder_problems"] = [problem.to_dict() for problem in rt.usecases.folder_problems]
    return out


def _live(rt: Runtime, p: Principal, usecase_id: str, action: str = "usecases.read") -> LiveUseCase:
    scope = perm.require(p, action)
    live = rt.usecases.get(usecase_id)
    if not _visible(p, scope, live.spec.departments):
        raise Forbidden(
            f"the use case {usecase_id!r} is not live in your department", code="usecase_not_live"
        )
    if action == "usecases.write":
        _check_write(p, scope, live.spec.departments)
    return live


@router.get("/api/usecases/{usecase_id}", summary="A use case: its current spec and state")
async def get_usecase(
    usecase_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    live = _live(rt, p, usecase_id)
    return {**_summary(live), "spec": live.spec.canonical()}


@router.get("/api/usecases/{usecase_id}/versions", summary="Every spec version, oldest first")
async def list_versions(
    usecase_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    _live(rt, p, usecase_id)
    return {"object": "list", "data": await run_in_threadpool(store.versions, rt.engine, usecase_id)}


@router.get("/api/usecases/{usecase_id}/versions/{number}", summary="One immutable spec version")
async def get_version(
    usecase_id: str, number: int, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    _live(rt, p, usecase_id)
    return await run_in_threadpool(store.version, rt.engine, usecase_id, number)


@router.post("/api/usecases/validate", summary="Check a spec (JSON or YAML text) without saving it")
async def validate(
    request: Request, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    perm.require(p, "usecases.write")
    body = await _body(request, rt)
    checked = await run_in_threadpool(check_submission, body, rt.platform_refs())
    return {
        "valid": checked.ok,
        "id": checked.spec.id if checked.spec is not None else None,
        "problems": [problem.to_dict() for problem in checked.problems],
    }


@router.post("/api/usecases", status_code=201, summary="Create a use case or make a new version of it")
async def put_usecase(
    request: Request, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "usecases.write")
    body = await _body(request, rt)
    checked = await run_in_threadpool(check_submission, body, rt.platform_refs())
    if not checked.ok or checked.spec is None:
        raise InvalidSpec(checked.problems)
    spec = checked.spec
    _check_write(p, scope, spec.departments)
    try:
        current = rt.usecases.get(spec.id)
    except store.UseCaseNotFound:
        current = None
    if current is not None:
        _check_write(p, scope, current.spec.departments)
    version, created = await run_in_threadpool(
        store.save_version, rt.engine, spec, origin="api", source=None, actor=p.name
    )
    await run_in_threadpool(rt.usecases.reload)
    return {**_summary(rt.usecases.get(spec.id)), "version": version, "created": created}


@router.delete("/api/usecases/{usecase_id}", summary="Remove a use case defined through the API")
async def remove_usecase(
    usecase_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    _live(rt, p, usecase_id, "usecases.write")
    await run_in_threadpool(store.remove, rt.engine, usecase_id, actor=p.name, origin="api")
    await run_in_threadpool(rt.usecases.reload)
    return {"deleted": True, "id": usecase_id}
