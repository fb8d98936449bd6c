"""Alerts as records: opened, re-notified, resolved, acknowledged; each change with its messages.

Deduplication holds across replicas: an open alert's ``open_key`` (origin, rule and scope) is
unique, so when two replicas see the same breach only one insert succeeds; resolving and
re-notifying are conditional updates, so only one replica queues their messages. Messages are
queued in ``alert_deliveries`` in the same transaction as the change (nothing is lost when a
webhook is down: aerodrome.monitoring.alert_delivery retries them). Opening, resolving and
acknowledging are audit events.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from aerodrome.audit import trail
from aerodrome.errors import Forbidden, NotFound
from aerodrome.identity.permissions import Scope
from aerodrome.identity.principal import Principal
from aerodrome.monitoring.alert_evaluator import Observation
from aerodrome.monitoring.alert_message import payload
from aerodrome.storage.tables import alert_deliveries, alerts

log = logging.getLogger("aerodrome.alerts")
SYSTEM = "aerodrome:alerts"


def new_id() -> str:
    return os.urandom(16).hex()


@dataclass(slots=True)
class Changes:
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)


def as_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out.pop("open_key", None)
    out["departments"] = [d for d in (out.get("departments") or "").split(",") if d]
    for k in ("opened_at", "resolved_at", "acknowledged_at", "last_notified_at"):
        if out.get(k) is not None:
            out[k] = out[k].isoformat()
    return out


def _queue(
    conn: Connection,
    alert: dict[str, Any],
    event: str,
    webhooks: Iterable[str],
    now: datetime,
    url: str | None,
) -> None:
    body = payload(alert, event, url)
    now = min(now, datetime.now(UTC))  # evaluated "as of" a later time (tests, replays): send now
    rows = [
        {
            "id": new_id(),
            "alert_id": alert["id"],
            "event": event,
            "webhook": name,
            "payload": body,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for name in webhooks
    ]
    if rows:
        conn.execute(alert_deliveries.insert(), rows)


def _open(
    engine: Engine, obs: Observation, now: datetime, webhooks: list[str], url: str | None
) -> str | None:
    rule = obs.rule
    alert_id = new_id()
    values: dict[str, Any] = {
        "id": alert_id,
        "open_key": obs.open_key,
        "rule": rule.rule_id,
        "origin": obs.origin,
        "metric": rule.metric,
        "scope_kind": obs.scope_kind,
        "scope_id": obs.scope_id,
        "usecase_id": obs.usecase_id,
        "departments": "," + ",".join(obs.departments) + ",",
        "severity": rule.severity,
        "status": "open",
        "value": obs.value,
        "threshold": rule.threshold,
        "side": rule.side,
        "window_s": rule.window_s,
        "samples": obs.samples,
        "summary": obs.summary[:1000],
        "details": obs.details,
        "opened_at": now,
        "last_notified_at": now,
    }
    try:
        with engine.begin() as conn:
            conn.execute(alerts.insert().values(**values))
            alert = as_dict(conn.execute(select(alerts).where(alerts.c.id == values["id"])).one())
            _queue(conn, alert, "fired", webhooks, now, url)
            trail.record(
                conn,
                actor=SYSTEM,
                action="alert.fired",
                object_type="alert",
                object_id=alert_id,
                details={
                    "rule": rule.rule_id,
                    "scope": f"{obs.scope_kind}:{obs.scope_id}",
                    "value": obs.value,
                },
            )
    except IntegrityError:  # another replica opened it first: one open alert per rule and scope
        return None
    return alert_id


def _resolve(
    engine: Engine,
    alert_id: str,
    obs: Observation | None,
    now: datetime,
    webhooks: list[str],
    url: str | None,
) -> bool:
    with engine.begin() as conn:
        changes: dict[str, Any] = {"status": "resolved", "resolved_at": now, "open_key": None}
        if obs is not None:
            changes.update(value=obs.value, samples=obs.samples)
        done = conn.execute(
            alerts.update().where(alerts.c.id == alert_id, alerts.c.status == "open").values(**changes)
        ).rowcount
        if done != 1:
            return False  # another replica resolved it
        alert = as_dict(conn.execute(select(alerts).where(alerts.c.id == alert_id)).one())
        if obs is None:
            alert["summary"] = f"{alert['summary']} (its rule no longer exists)"
        _queue(conn, alert, "resolved", webhooks, now, url)
        trail.record(
            conn,
            actor=SYSTEM,
            action="alert.resolved",
            object_type="alert",
            object_id=alert_id,
            details={"rule": alert["rule"], "value": None if obs is None else obs.value},
        )
    return True


def _refresh(
    engine: Engine,
    row: Any,
    obs: Observation,
    now: datetime,
    renotify_s: float,
    webhooks: list[str],
    url: str | None,
) -> bool:
    """Update the open alert's current value; True when a reminder was queued."""
    remind = (
        renotify_s > 0
        and row.acknowledged_at is None
        and (row.last_notified_at is None or now - row.last_notified_at >= timedelta(seconds=renotify_s))
    )
    with engine.begin() as conn:
        values: dict[str, Any] = {
            "value": obs.value,
            "samples": obs.samples,
            "summary": obs.summary[:1000],
            "details": obs.details,
        }
        cond = [alerts.c.id == row.id, alerts.c.status == "open"]
        if remind:
            values["last_notified_at"] = now
            cond.append(
                alerts.c.last_notified_at.is_(None)
                if row.last_notified_at is None
                else alerts.c.last_notified_at == row.last_notified_at
            )
        done = conn.execute(alerts.update().where(*cond).values(**values)).rowcount
        if remind and done == 1:
            alert = as_dict(conn.execute(select(alerts).where(alerts.c.id == row.id)).one())
            _queue(conn, alert, "reminder", webhooks, now, url)
            return True
    return False


def apply(
    engine: Engine,
    observations: list[Observation],
    *,
    now: datetime,
    renotify_after_s: float,
    webhooks: list[str],
    console_url: str | None = None,
) -> Changes:
    """Open, refresh or resolve alerts from the observations (``webhooks``: every configured name)."""
    changes = Changes()
    keys = [o.open_key for o in observations]
    with engine.connect() as conn:
        open_rows = (
            {r.open_key: r for r in conn.execute(select(alerts).where(alerts.c.open_key.in_(keys)))}
            if keys
            else {}
        )
    for obs in observations:
        targets = obs.rule.webhooks if obs.rule.webhooks is not None else webhooks
        row = open_rows.get(obs.open_key)
        if obs.breached is True and row is None:
            opened = _open(engine, obs, now, targets, console_url)
            if opened:
                changes.fired.append(opened)
                log.warning(
                    "alert fired", extra={"event": "alert.fired", "alert_id": opened, "summary": obs.summary}
                )
        elif obs.breached is True and row is not None:
            if _refresh(engine, row, obs, now, renotify_after_s, targets, console_url):
                changes.reminded.append(row.id)
        elif (
            obs.breached is False
            and row is not None
            and _resolve(engine, row.id, obs, now, targets, console_url)
        ):
            changes.resolved.append(row.id)
            log.info("alert resolved", extra={"event": "alert.resolved", "alert_id": row.id})
    return changes


def retire_missing(engine: Engine, known_keys: set[str], *, now: datetime, webhooks: list[str]) -> list[str]:
    """Resolve open alerts whose rule or scope no longer exists (a rule removed, a use case retired)."""
    with engine.connect() as conn:
        rows = conn.execute(select(alerts.c.id, alerts.c.open_key).where(alerts.c.status == "open")).all()
    gone = [r.id for r in rows if r.open_key not in known_keys]
    return [a for a in gone if _resolve(engine, a, None, now, webhooks, None)]


# ---------------------------------------------------------------- reading and acknowledging


@dataclass(frozen=True, slots=True)
class AlertFilter:
    status: str | None = None
    usecase_id: str | None = None
    department: str | None = None
    metric: str | None = None
    severity: str | None = None
    since: datetime | None = None
    limit: int = 100
    offset: int = 0


def list_alerts(engine: Engine, principal: Principal, scope: Scope, flt: AlertFilter) -> dict[str, Any]:
    conds = []
    if scope != "all":
        conds.append(_of_department(principal.department_id))
    if flt.department:
        conds.append(_of_department(flt.department))
    for col, value in (
        (alerts.c.status, flt.status),
        (alerts.c.usecase_id, flt.usecase_id),
        (alerts.c.metric, flt.metric),
        (alerts.c.severity, flt.severity),
    ):
        if value:
            conds.append(col == value)
    if flt.since:
        conds.append(alerts.c.opened_at >= flt.since)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(alerts).where(*conds)).scalar_one()
        rows = conn.execute(
            select(alerts)
            .where(*conds)
            .order_by(alerts.c.opened_at.desc(), alerts.c.id)
            .limit(flt.limit)
            .offset(flt.offset)
        ).all()
    return {"object": "list", "total": total, "data": [as_dict(r) for r in rows]}


def _visible(principal: Principal, scope: Scope, row: Any) -> None:
    if scope != "all" and f",{principal.department_id}," not in row.departments:
        raise Forbidden("this alert belongs to another department")


def _of_department(dept: str) -> Any:
    escaped = dept.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return alerts.c.departments.like(f"%,{escaped},%", escape="\\")


def get_alert(engine: Engine, principal: Principal, scope: Scope, alert_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFound(f"no alert {alert_id!r}")
        _visible(principal, scope, row)
        deliveries = conn.execute(
            select(alert_deliveries)
            .where(alert_deliveries.c.alert_id == alert_id)
            .order_by(alert_deliveries.c.created_at)
        ).all()
    out = as_dict(row)
    out["deliveries"] = [
        {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in d._mapping.items()
            if k not in ("payload", "claimed_until")
        }
        for d in deliveries
    ]
    return out


def acknowledge(
    engine: Engine, principal: Principal, scope: Scope, ids: list[str], now: datetime
) -> list[dict[str, Any]]:
    """Acknowledge alerts (no more reminders); already acknowledged ones are left as they are."""
    out = []
    with engine.begin() as conn:
        for alert_id in ids:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                raise NotFound(f"no alert {alert_id!r}")
            _visible(principal, scope, row)
            if row.acknowledged_at is None:
                conn.execute(
                    alerts.update()
                    .where(alerts.c.id == alert_id)
                    .values(acknowledged_at=now, acknowledged_by=principal.name)
                )
                trail.record(
                    conn,
                    actor=principal.name,
                    action="alert.acknowledged",
                    object_type="alert",
                    object_id=alert_id,
                    details={"rule": row.rule, "status": row.status},
                )
            out.append(as_dict(conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()))
    return out
