"""Dashboard figures from the run records: adoption, quality, efficiency, cost, latency and errors.

Each figure is one SQL aggregate over the runs (or feedback, tasks) of a time window, within the
caller's ``runs.read`` scope: every department (all), the caller's department, or the caller's
own runs. Domain functions, no HTTP.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, select

from aerodrome.evidence.metrics import POSITIVE_SCORE
from aerodrome.identity.permissions import Scope
from aerodrome.identity.principal import Principal
from aerodrome.storage.tables import feedback, runs, tasks

WINDOWS = (1, 7, 30, 90)
ERROR_STATUSES = ("error", "rejected")


@dataclass(frozen=True, slots=True)
class DashboardFilter:
    days: int = 30
    department: str | None = None
    usecase_id: str | None = None


def _scoped(principal: Principal, scope: Scope, flt: DashboardFilter, since: datetime) -> list[Any]:
    """The window's runs in the caller's scope. Department and use case are compared through
    coalesce() so that the planner keeps to the covering index (range on created_at) instead of the
    narrower department index, which would visit every run row of the department."""
    department = func.coalesce(runs.c.department_id, "")
    conds: list[Any] = [runs.c.created_at >= since]
    if scope == "department":
        conds.append(department == principal.department_id)
    elif scope == "own":
        conds.append(runs.c.principal == principal.name)
    if flt.department:
        conds.append(department == flt.department)
    if flt.usecase_id:
        conds.append(func.coalesce(runs.c.use_case_id, "") == flt.usecase_id)
    return conds


def _day(value: Any) -> str:
    return value if isinstance(value, str) else value.isoformat()[:10]


def figures(
    engine: Engine, principal: Principal, scope: Scope, flt: DashboardFilter, *, now: datetime | None = None
) -> dict[str, Any]:
    """Every figure of the dashboards. The run queries read the ``ix_runs_console_figures``
    covering index only: one pass for the per-day, department, use case and model sums, one for the
    active users per day, one for the window's distinct users and one for the p95 latency."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=flt.days)
    conds = _scoped(principal, scope, flt, since)
    day = func.date(runs.c.created_at)
    is_error = case((runs.c.status.in_(ERROR_STATUSES), 1), else_=0)
    with engine.connect() as conn:
        cells = conn.execute(
            select(
                day.label("day"),
                runs.c.department_id,
                runs.c.use_case_id,
                runs.c.alias,
                func.count().label("runs"),
                func.sum(is_error).label("errors"),
                func.coalesce(func.sum(runs.c.cost_usd), 0.0).label("cost"),
                func.coalesce(func.sum(runs.c.latency_ms), 0.0).label("latency"),
            )
            .where(*conds)
            .group_by(day, runs.c.department_id, runs.c.use_case_id, runs.c.alias)
        ).all()
        active = conn.execute(
            select(day.label("day"), runs.c.department_id, func.count(func.distinct(runs.c.principal)))
            .where(*conds)
            .group_by(day, runs.c.department_id)
        ).all()
        users = int(
            conn.execute(select(func.count(func.distinct(runs.c.principal))).where(*conds)).scalar() or 0
        )
        n = sum(int(c.runs) for c in cells)
        answered = n - sum(int(c.errors or 0) for c in cells)
        p95 = None
        if answered:  # nearest rank over the runs that got an answer
            p95 = conn.execute(
                select(runs.c.latency_ms)
                .where(*conds, runs.c.status.not_in(ERROR_STATUSES))
                .order_by(runs.c.latency_ms)
                .offset(math.ceil(0.95 * answered) - 1)
                .limit(1)
            ).scalar()
        quality = _quality(conn, principal, scope, flt, since)
        efficiency = _efficiency(conn, principal, scope, flt, since)
    by_day: dict[str, dict[str, float]] = {}
    cost_by: dict[str, dict[str, dict[str, float]]] = {"department": {}, "usecase": {}, "model": {}}
    for c in cells:
        d = by_day.setdefault(_day(c.day), {"runs": 0, "errors": 0, "latency": 0.0})
        d["runs"] += int(c.runs)
        d["errors"] += int(c.errors or 0)
        d["latency"] += float(c.latency)
        for name, key in (("department", c.department_id), ("usecase", c.use_case_id), ("model", c.alias)):
            slot = cost_by[name].setdefault(key or "—", {"cost_usd": 0.0, "runs": 0})
            slot["cost_usd"] += float(c.cost)
            slot["runs"] += int(c.runs)
    series: dict[str, dict[str, int]] = {}
    for d_, dept, count in active:
        series.setdefault(dept or "—", {})[_day(d_)] = int(count)
    days = sorted(by_day)
    departments = sorted(series)
    errors = sum(int(v["errors"]) for v in by_day.values())
    total_latency = sum(v["latency"] for v in by_day.values())
    return {
        "window_days": flt.days,
        "since": since,
        "days": days,
        "adoption": {
            "departments": departments,
            "active_users": {dept: [series[dept].get(d, 0) for d in days] for dept in departments},
        },
        "operations": {
            "runs": [int(by_day[d]["runs"]) for d in days],
            "errors": [int(by_day[d]["errors"]) for d in days],
            "latency_ms": [round(by_day[d]["latency"] / max(1, by_day[d]["runs"]), 1) for d in days],
        },
        "totals": {
            "runs": n,
            "users": users,
            "errors": errors,
            "error_rate": errors / n if n else None,
            "cost_usd": sum(v["cost_usd"] for v in cost_by["department"].values()),
            "latency_avg_ms": total_latency / n if n else None,
            "latency_p95_ms": float(p95) if p95 is not None else None,
        },
        "cost": {
            name: [
                {"name": key, "cost_usd": v["cost_usd"], "runs": int(v["runs"])}
                for key, v in sorted(groups.items(), key=lambda kv: -kv[1]["cost_usd"])[:20]
            ]
            for name, groups in cost_by.items()
        },
        "quality": quality,
        "efficiency": efficiency,
    }


def _quality(
    conn: Any, principal: Principal, scope: Scope, flt: DashboardFilter, since: datetime
) -> dict[str, Any]:
    conds: list[Any] = [feedback.c.created_at >= since]
    if scope == "department":
        conds.append(feedback.c.department_id == principal.department_id)
    elif scope == "own":
        conds.append(feedback.c.author == principal.name)
    if flt.department:
        conds.append(feedback.c.department_id == flt.department)
    if flt.usecase_id:
        conds.append(feedback.c.usecase_id == flt.usecase_id)
    rated, useful = conn.execute(
        select(
            func.count(feedback.c.score),
            func.sum(case((feedback.c.score >= POSITIVE_SCORE, 1), else_=0)),
        ).where(*conds)
    ).one()
    flags: dict[str, int] = {}
    corrections = 0
    for flag_list, correction in conn.execute(select(feedback.c.flags, feedback.c.correction).where(*conds)):
        for flag in flag_list or ():
            flags[flag] = flags.get(flag, 0) + 1
        corrections += correction is not None
    return {
        "rated": int(rated or 0),
        "useful": int(useful or 0),
        "useful_rate": (int(useful or 0) / int(rated)) if rated else None,
        "flags": dict(sorted(flags.items(), key=lambda kv: -kv[1])),
        "corrections": corrections,
    }


def _efficiency(
    conn: Any, principal: Principal, scope: Scope, flt: DashboardFilter, since: datetime
) -> dict[str, Any]:
    conds: list[Any] = [tasks.c.finished_at >= since]
    if scope == "department":
        conds.append(tasks.c.department_id == principal.department_id)
    elif scope == "own":
        conds.append(tasks.c.user_ref == principal.name)
    if flt.department:
        conds.append(tasks.c.department_id == flt.department)
    if flt.usecase_id:
        conds.append(tasks.c.usecase_id == flt.usecase_id)
    durations: dict[str, list[float]] = {}
    for group, duration in conn.execute(
        select(tasks.c.group, tasks.c.duration_s).where(*conds).limit(200_000)
    ):
        durations.setdefault(group, []).append(float(duration))
    medians = {g: statistics.median(v) for g, v in durations.items() if v}
    reference = medians.get("baseline", medians.get("control"))
    treated = medians.get("treatment")
    saved = None
    if reference and treated is not None:
        saved = 1 - treated / reference
    return {
        "tasks": {g: len(v) for g, v in durations.items()},
        "median_s": medians,
        "time_saved_pct": saved,
        "hours_saved": ((reference - treated) * len(durations.get("treatment", [])) / 3600)
        if reference and treated is not None
        else None,
    }


def usage_by_deployment(
    engine: Engine, principal: Principal, scope: Scope, *, days: int = 30, now: datetime | None = None
) -> dict[str, dict[str, float]]:
    """Runs, tokens and cost per deployment over the last ``days``, within the runs.read scope."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    conds = _scoped(principal, scope, DashboardFilter(days=days), since)
    query = (
        select(
            runs.c.deployment,
            func.count(),
            func.coalesce(func.sum(runs.c.prompt_tokens + runs.c.completion_tokens), 0),
            func.coalesce(func.sum(runs.c.cost_usd), 0.0),
        )
        .where(*conds, runs.c.deployment.is_not(None))
        .group_by(runs.c.deployment)
    )
    with engine.connect() as conn:
        return {
            name: {"runs": int(n), "tokens": int(tok), "cost_usd": float(cost)}
            for name, n, tok, cost in conn.execute(query)
        }
