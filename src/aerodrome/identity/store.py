"""Departments, users and API keys in the database. Domain functions, no HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, select, update

from aerodrome.audit import trail
from aerodrome.config import (
    DATA_CLASS_ORDER,
    ROLES,
    Budget,
    DepartmentConfig,
    Limits,
    PlatformConfig,
    UserConfig,
)
from aerodrome.errors import BadRequest, Conflict, Forbidden, NotFound
from aerodrome.identity import keys as keymat
from aerodrome.identity.permissions import Scope, may_grant
from aerodrome.identity.principal import Principal
from aerodrome.storage.tables import api_keys, departments, users


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- departments


def upsert_department(engine: Engine, dept: DepartmentConfig, *, actor: str = "config") -> None:
    with engine.begin() as conn:
        row = conn.execute(select(departments).where(departments.c.id == dept.id)).first()
        values = {
            "name": dept.name,
            "eligible_users": dept.eligible_users,
            "content_logging": dept.content_logging,
            "limits": dept.limits.model_dump(),
            "budget": dept.budget.model_dump() if dept.budget else None,
        }
        if row is None:
            conn.execute(departments.insert().values(id=dept.id, created_at=_now(), **values))
            trail.record(
                conn,
                actor=actor,
                action="department.create",
                object_type="department",
                object_id=dept.id,
                details=values,
            )
        elif any(getattr(row, k) != v for k, v in values.items()):
            conn.execute(update(departments).where(departments.c.id == dept.id).values(**values))
            trail.record(
                conn,
                actor=actor,
                action="department.update",
                object_type="department",
                object_id=dept.id,
                details=values,
            )


def list_departments(engine: Engine, principal: Principal, scope: Scope) -> list[dict[str, Any]]:
    q = select(departments).order_by(departments.c.id)
    if scope != "all":
        q = q.where(departments.c.id == principal.department_id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def department_exists(engine: Engine, department_id: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(select(departments.c.id).where(departments.c.id == department_id)).first()
            is not None
        )


def load_departments(engine: Engine) -> dict[str, DepartmentConfig]:
    """Every department with its limits, budget and logging policy (the database is the source of truth)."""
    with engine.connect() as conn:
        rows = conn.execute(select(departments)).mappings().all()
    return {
        r["id"]: DepartmentConfig(
            id=r["id"],
            name=r["name"],
            eligible_users=r["eligible_users"],
            content_logging=r["content_logging"],
            limits=Limits.model_validate(r["limits"] or {}),
            budget=Budget.model_validate(r["budget"]) if r["budget"] else None,
        )
        for r in rows
    }


def content_logging_policies(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            r.id: r.content_logging
            for r in conn.execute(select(departments.c.id, departments.c.content_logging))
        }


# ---------------------------------------------------------------- users


def upsert_user(engine: Engine, user: UserConfig, *, actor: str = "config") -> str:
    with engine.begin() as conn:
        if conn.execute(select(departments.c.id).where(departments.c.id == user.department)).first() is None:
            raise NotFound(
                f"unknown department {user.department!r}", code="department_not_found", param="department"
            )
        row = conn.execute(select(users).where(users.c.email == user.email)).first()
        values = {
            "name": user.name,
            "department_id": user.department,
            "roles": sorted(user.roles),
            "attributes": user.attributes,
        }
        if row is None:
            user_id = str(uuid.uuid4())
            conn.execute(
                users.insert().values(
                    id=user_id, email=user.email, disabled=False, created_at=_now(), **values
                )
            )
            trail.record(
                conn,
                actor=actor,
                action="user.create",
                object_type="user",
                object_id=user_id,
                details={"email": user.email, **values},
            )
            return user_id
        if any(getattr(row, k) != v for k, v in values.items()):
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            trail.record(
                conn, actor=actor, action="user.update", object_type="user", object_id=row.id, details=values
            )
        return str(row.id)


def list_users(engine: Engine, principal: Principal, scope: Scope) -> list[dict[str, Any]]:
    q = select(users).order_by(users.c.email)
    if scope == "department":
        q = q.where(users.c.department_id == principal.department_id)
    elif scope == "own":
        q = q.where(users.c.id == principal.user_id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def user_by_email(engine: Engine, email: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == email)).mappings().first()
        return dict(row) if row else None


def apply_config(engine: Engine, config: PlatformConfig) -> None:
    """Make the database agree with the departments and users of the config file."""
    for dept in config.departments:
        upsert_department(engine, dept)
    for user in config.users:
        upsert_user(engine, user)


# ---------------------------------------------------------------- API keys


@dataclass(frozen=True, slots=True)
class KeyRequest:
    department_id: str
    role: str
    name: str = ""
    user_email: str | None = None
    aliases: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget | None = None
    expires_at: datetime | None = None
    data_class: str | None = None


_PUBLIC_KEY_COLUMNS = [c for c in api_keys.c if c.name != "hash"]


def create_key(
    engine: Engine, req: KeyRequest, *, actor: str, creator: Principal | None = None
) -> tuple[str, dict[str, Any]]:
    """Create a key; returns (plaintext shown once, stored record without the hash).

    ``creator`` None means an operator at the command line (trusted).
    """
    if req.data_class is not None and req.data_class not in DATA_CLASS_ORDER:
        raise BadRequest(f"data_class must be one of {list(DATA_CLASS_ORDER)}", param="data_class")
    if req.role not in ROLES:
        raise BadRequest(f"unknown role {req.role!r}; roles are {list(ROLES)}", param="role")
    if req.expires_at is not None and _aware(req.expires_at) <= _now():  # type: ignore[operator]
        raise BadRequest("expires_at is in the past", param="expires_at")
    if creator is not None and not may_grant(creator, req.role):
        raise Forbidden(f"you may not create a key with role {req.role!r}")
    material = keymat.generate()
    key_id = str(uuid.uuid4())
    with engine.begin() as conn:
        if (
            conn.execute(select(departments.c.id).where(departments.c.id == req.department_id)).first()
            is None
        ):
            raise NotFound(
                f"unknown department {req.department_id!r}", code="department_not_found", param="department"
            )
        user_id = None
        if req.user_email:
            user_row = conn.execute(
                select(users.c.id, users.c.department_id).where(users.c.email == req.user_email)
            ).first()
            if user_row is None:
                raise NotFound(f"unknown user {req.user_email!r}", code="user_not_found", param="user")
            if user_row.department_id != req.department_id:
                raise BadRequest("the user belongs to another department", param="user")
            user_id = user_row.id
        record = {
            "id": key_id,
            "prefix": material.prefix,
            "name": req.name,
            "department_id": req.department_id,
            "user_id": user_id,
            "role": req.role,
            "aliases": sorted(req.aliases) if req.aliases is not None else None,
            "rpm": req.rpm,
            "tpm": req.tpm,
            "budget_usd": req.budget.usd if req.budget else None,
            "budget_period": req.budget.period if req.budget else None,
            "budget_soft_pct": req.budget.soft_pct if req.budget else None,
            "data_class": req.data_class,
            "expires_at": _aware(req.expires_at),
            "revoked_at": None,
            "created_by": actor,
            "created_at": _now(),
        }
        conn.execute(api_keys.insert().values(hash=material.hash, **record))
        trail.record(
            conn,
            actor=actor,
            action="key.create",
            object_type="api_key",
            object_id=key_id,
            details={
                "prefix": material.prefix,
                "department": req.department_id,
                "role": req.role,
                "name": req.name,
                "aliases": record["aliases"],
            },
        )
    return material.plaintext, record


def _own_keys(principal: Principal) -> Any:
    """Keys a principal owns: those it created, its own key, and keys issued to its user."""
    cond = (api_keys.c.created_by == principal.name) | (api_keys.c.id == (principal.key_id or ""))
    if principal.user_id:
        cond = cond | (api_keys.c.user_id == principal.user_id)
    return cond


def list_keys(
    engine: Engine,
    principal: Principal | None,
    scope: Scope,
    *,
    department: str | None = None,
    include_revoked: bool = True,
) -> list[dict[str, Any]]:
    q = select(*_PUBLIC_KEY_COLUMNS).order_by(api_keys.c.created_at)
    if principal is not None and scope == "department":
        q = q.where(api_keys.c.department_id == principal.department_id)
    elif principal is not None and scope == "own":
        q = q.where(_own_keys(principal))
    if department:
        q = q.where(api_keys.c.department_id == department)
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def revoke_key(
    engine: Engine, key_ref: str, *, actor: str, principal: Principal | None = None, scope: Scope = "all"
) -> dict[str, Any]:
    """Revoke by id or by prefix. Returns the key's public record."""
    with engine.begin() as conn:
        row = (
            conn.execute(
                select(*_PUBLIC_KEY_COLUMNS).where(
                    (api_keys.c.id == key_ref) | (api_keys.c.prefix == key_ref)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"no API key {key_ref!r}", code="key_not_found")
        if principal is not None:
            if scope == "department" and row["department_id"] != principal.department_id:
                raise Forbidden("this key belongs to another department")
            if (
                scope == "own"
                and row["created_by"] != principal.name
                and row["id"] != principal.key_id
                and not (principal.user_id and row["user_id"] == principal.user_id)
            ):
                raise Forbidden("you may revoke only keys you created")
        if row["revoked_at"] is not None:
            raise Conflict("this key is already revoked", code="key_already_revoked")
        now = _now()
        conn.execute(update(api_keys).where(and_(api_keys.c.id == row["id"])).values(revoked_at=now))
        trail.record(
            conn,
            actor=actor,
            action="key.revoke",
            object_type="api_key",
            object_id=row["id"],
            details={"prefix": row["prefix"]},
        )
        return {**dict(row), "revoked_at": now}


def load_key(engine: Engine, prefix: str) -> dict[str, Any] | None:
    """The key row (with hash) and its user's email and roles, for authentication."""
    q = (
        select(api_keys, users.c.email.label("user_email"), users.c.disabled.label("user_disabled"))
        .select_from(api_keys.outerjoin(users, users.c.id == api_keys.c.user_id))
        .where(api_keys.c.prefix == prefix)
    )
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
        return dict(row) if row else None
