"""Audit events: who did what to which object, linked by a SHA-256 hash chain.

Each event's hash covers its content and the previous event's hash, so a changed
or deleted event breaks every later link; :func:`verify` finds the first break.
Events are written in the same transaction as the change they record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from aerodrome.storage.tables import audit_events

GENESIS = "0" * 64


def _digest(prev_hash: str, at: datetime, actor: str, action: str, otype: str, oid: str, details: Any) -> str:
    payload = orjson.dumps(
        [prev_hash, at.isoformat(), actor, action, otype, oid, details], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(payload).hexdigest()


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
) -> str:
    """Append one event inside the caller's transaction; returns its hash."""
    if conn.dialect.name == "postgresql":
        # Serialise writers so that two transactions cannot both link to the same predecessor.
        conn.exec_driver_sql("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
    last = conn.execute(select(audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)).scalar()
    prev = last or GENESIS
    at = datetime.now(UTC)
    details = details or {}
    digest = _digest(prev, at, actor, action, object_type, object_id, details)
    conn.execute(
        audit_events.insert().values(
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details,
            prev_hash=prev,
            hash=digest,
        )
    )
    return digest


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify(engine: Engine) -> Verification:
    prev = GENESIS
    count = 0
    with engine.connect() as conn:
        for row in conn.execute(select(audit_events).order_by(audit_events.c.seq)):
            count += 1
            at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
            if row.prev_hash != prev:
                return Verification(False, count, row.seq, "link to the previous event is broken")
            expected = _digest(prev, at, row.actor, row.action, row.object_type, row.object_id, row.details)
            if expected != row.hash:
                return Verification(False, count, row.seq, "event content does not match its hash")
            prev = row.hash
    return Verification(True, count)


def head(engine: Engine) -> str | None:
    """The hash of the newest event (an anchor to keep elsewhere)."""
    with engine.connect() as conn:
        return conn.execute(select(audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)).scalar()


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." (e.g. "key.")
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


def list_events(engine: Engine, flt: AuditFilter | None = None) -> dict[str, Any]:
    flt = flt or AuditFilter()
    conds = []
    if flt.actor:
        conds.append(audit_events.c.actor == flt.actor)
    if flt.action:
        if flt.action.endswith("."):
            conds.append(audit_events.c.action.startswith(flt.action, autoescape=True))
        else:
            conds.append(audit_events.c.action == flt.action)
    if flt.object_type:
        conds.append(audit_events.c.object_type == flt.object_type)
    if flt.object_id:
        conds.append(audit_events.c.object_id == flt.object_id)
    if flt.since:
        conds.append(audit_events.c.at >= flt.since)
    if flt.until:
        conds.append(audit_events.c.at < flt.until)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(audit_events).where(*conds)).scalar_one()
        rows = conn.execute(
            select(audit_events)
            .where(*conds)
            .order_by(audit_events.c.seq.desc())
            .limit(flt.limit)
            .offset(flt.offset)
        ).mappings()
        return {"object": "list", "total": total, "data": [dict(r) for r in rows]}
