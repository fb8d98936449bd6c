"""Reading run records: filtered, paged, scoped by the caller's permissions.

A run as the API shows it is its ``runs`` row with its content (``input``, ``output``) from
``run_contents`` joined in; only the page of runs shown reads content, counts read ``runs`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from aerodrome.identity.permissions import Scope
from aerodrome.identity.principal import Principal
from aerodrome.storage.tables import run_contents, runs

# The columns of a run with its content, in the order the API has always shown them.
_WITH_CONTENT = [
    *(c for c in runs.c if c.name != "meta"),
    run_contents.c.input,
    run_contents.c.output,
    runs.c.meta,
]
_JOINED = runs.outerjoin(run_contents, run_contents.c.run_id == runs.c.id)


@dataclass(frozen=True, slots=True)
class RunFilter:
    department: str | None = None
    alias: str | None = None
    deployment: str | None = None
    key_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


def list_runs(engine: Engine, principal: Principal, scope: Scope, flt: RunFilter) -> dict[str, Any]:
    conds = []
    if scope == "department":
        conds.append(runs.c.department_id == principal.department_id)
    elif scope == "own":
        if principal.user_id:
            conds.append(runs.c.user_id == principal.user_id)
        else:
            conds.append(runs.c.key_id == principal.key_id)
    for col, value in (
        (runs.c.department_id, flt.department),
        (runs.c.alias, flt.alias),
        (runs.c.deployment, flt.deployment),
        (runs.c.key_id, flt.key_id),
        (runs.c.status, flt.status),
    ):
        if value:
            conds.append(col == value)
    if flt.since:
        conds.append(runs.c.created_at >= flt.since)
    if flt.until:
        conds.append(runs.c.created_at < flt.until)
    q = (
        select(*_WITH_CONTENT)
        .select_from(_JOINED)
        .where(*conds)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
    )
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(runs).where(*conds)).scalar_one()
        rows = [dict(r) for r in conn.execute(q.limit(flt.limit).offset(flt.offset)).mappings()]
    return {"object": "list", "total": total, "data": rows}


def get_run(engine: Engine, run_id: str, *, content: bool = True) -> dict[str, Any] | None:
    """One run, with its ``input`` and ``output`` unless ``content`` is False (metadata only)."""
    q = select(*_WITH_CONTENT).select_from(_JOINED) if content else select(runs)
    with engine.connect() as conn:
        row = conn.execute(q.where(runs.c.id == run_id)).mappings().first()
        return dict(row) if row else None


def spent_since(engine: Engine, column: str, since: datetime, ident: str | None = None) -> dict[str, float]:
    """Cost per department / key / alias since a moment (to seed budget accounts); one of them with ``ident``."""
    col = runs.c[column]
    query = select(col, func.sum(runs.c.cost_usd)).where(runs.c.created_at >= since)
    if ident is not None:
        query = query.where(col == ident)
    with engine.connect() as conn:
        rows = conn.execute(query.group_by(col)).all()
    return {str(k): float(v or 0.0) for k, v in rows if k is not None}


def utcnow() -> datetime:
    return datetime.now(UTC)
