"""Departments, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.config import Budget, DataClass, DepartmentConfig, UserConfig
from aerodrome.errors import Forbidden
from aerodrome.identity import permissions as perm
from aerodrome.identity import store
from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime

router = APIRouter(prefix="/api", tags=["identity"])


class KeyCreate(BaseModel):
    department: str
    role: str = "user"
    name: str = ""
    user: str | None = Field(default=None, description="email of the user the key acts for")
    aliases: list[str] | None = Field(default=None, description="aliases the key may use; all when absent")
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    budget: Budget | None = None
    expires_at: datetime | None = None
    data_class: DataClass | None = Field(
        default=None,
        description="declared class of everything sent with this key (routing respects ceilings)",
    )


@router.get("/departments")
async def list_departments(
    p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "departments.read")
    return {"object": "list", "data": await run_in_threadpool(store.list_departments, rt.engine, p, scope)}


@router.post("/departments", status_code=201)
async def create_department(
    body: DepartmentConfig, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    perm.require(p, "departments.write")
    await run_in_threadpool(store.upsert_department, rt.engine, body, actor=p.name)
    rt.set_departments({**rt.departments, body.id: body})
    await run_in_threadpool(rt.seed_department_budget, body)
    return body.model_dump()


@router.get("/users")
async def list_users(p: Principal = Depends(principal), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    scope = perm.require(p, "users.read")
    return {"object": "list", "data": await run_in_threadpool(store.list_users, rt.engine, p, scope)}


@router.post("/users", status_code=201)
async def create_user(
    body: UserConfig, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "users.write")
    perm.check_department(p, scope, body.department)
    for role in body.roles:
        if not perm.may_grant(p, role):
            raise Forbidden(f"you may not give the role {role!r}")
    user_id = await run_in_threadpool(store.upsert_user, rt.engine, body, actor=p.name)
    return {"id": user_id, **body.model_dump()}


@router.get("/keys")
async def list_keys(
    department: str | None = None,
    include_revoked: bool = True,
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "keys.read")
    data = await run_in_threadpool(
        store.list_keys, rt.engine, p, scope, department=department, include_revoked=include_revoked
    )
    return {"object": "list", "data": data}


@router.post("/keys", status_code=201, summary="Create an API key (the key is shown once, in this answer)")
async def create_key(
    body: KeyCreate, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "keys.write")
    perm.check_department(p, "department" if scope == "own" else scope, body.department)
    req = store.KeyRequest(
        department_id=body.department,
        role=body.role,
        name=body.name,
        user_email=body.user,
        aliases=body.aliases,
        rpm=body.rpm,
        tpm=body.tpm,
        budget=body.budget,
        expires_at=body.expires_at,
        data_class=body.data_class,
    )
    plaintext, record = await run_in_threadpool(store.create_key, rt.engine, req, actor=p.name, creator=p)
    if body.budget is not None:
        rt.limits.load_spent("key", record["id"], body.budget, 0.0)
    return {**record, "key": plaintext}


@router.delete("/keys/{key_ref}", summary="Revoke an API key (by id or prefix)")
async def revoke_key(
    key_ref: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "keys.write")
    record = await run_in_threadpool(
        store.revoke_key, rt.engine, key_ref, actor=p.name, principal=p, scope=scope
    )
    await rt.key_revoked(record["prefix"])
    return record


@router.get("/budgets")
async def budgets(
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
    scope_kind: str | None = Query(default=None, alias="scope"),
) -> dict[str, Any]:
    scope = perm.require(p, "budgets.read")
    data = await rt.limits.snapshot()
    if scope != "all":
        data = [b for b in data if b["scope"] == "department" and b["id"] == p.department_id]
    if scope_kind:
        data = [b for b in data if b["scope"] == scope_kind]
    return {"object": "list", "data": data}
