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

from aerodrome.evidence.feedback_counts import POSITIVE_SCORE
from aerodrome.identity.permissions import Scope
from aerodrome.identity.principal import Principal
from aerodrome.monitoring import daily_rollups
from aerodrome.storage.tables import feedback, run_daily_figures, run_daily_users, runs, tasks

WINDOWS = (1, 7, 30, 90)
ERROR_STATUSES = ("error", "rejected")


@dataclass(frozen=True, slots=True)
class DashboardFilter:
    days: int = 30
    department: str | None = None
    usecase_id: str | None = None


def _scoped(
    principal: Principal,
    scope: Scope,
    flt: DashboardFilter,
    since: datetime,
    until: datetime | None = None,
    *,
    usage: bool = True,
) -> list[Any]:
    """The runs of ``[since, until)`` in the caller's scope; ``usage`` leaves out evaluation and
    red-team runs (:data:`daily_rollups.NOT_USAGE`). Department and use case are compared
    through coalesce() so that the planner keeps to the covering index (range on created_at)
    instead of the narrower department index, which would visit every run row of the department."""
    department = func.coalesce(runs.c.department_id, "")
    conds: list[Any] = [runs.c.created_at >= since]
    if usage:
        conds.append(daily_rollups.usage_only())
    if until is not None:
        conds.append(runs.c.created_at < until)
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


@dataclass(slots=True)
class RunFigures:
    """What the run records give the dashboards, however they were read."""

    cells: list[tuple[str, str | None, str | None, str | None, int, int, float, float]]
    """(day, department, use case, alias, runs, errors, cost, latency sum)."""
    active: list[tuple[str, str | None, int]]  # (day, department, active users)
    users: int
    p95: float | None


def figures(
    engine: Engine,
    principal: Principal,
    scope: Scope,
    flt: DashboardFilter,
    *,
    now: datetime | None = None,
    use_rollups: bool = True,
) -> dict[str, Any]:
    """Every figure of the dashboards over the ``flt.days`` before ``now``.

    Scopes "all" and "department" read whole days from the daily rollups and only the partial
    days from the runs (:mod:`aerodrome.monitoring.daily_rollups`); a user's own runs, or
    ``use_rollups=False``, read the ``ix_runs_console_figures`` covering index alone. Both give the
    same figures (sums of floats may differ in the last digits)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=flt.days)
    with engine.connect() as conn:
        if use_rollups and scope != "own":
            run_figures = _from_rollups(conn, principal, scope, flt, since, now)
        else:
            run_figures = _from_runs(conn, principal, scope, flt, since, now)
        quality = _quality(conn, principal, scope, flt, since)
        efficiency = _efficiency(conn, principal, scope, flt, since)
    return _assemble(flt, since, run_figures, quality, efficiency)


def _from_runs(
    conn: Any, principal: Principal, scope: Scope, flt: DashboardFilter, since: datetime, now: datetime
) -> RunFigures:
    """One pass for the per-day, department, use case and model sums, one for the active users
    per day, one for the window's distinct users and one for the p95 latency."""
    conds = _scoped(principal, scope, flt, since, now)
    day = func.date(runs.c.created_at)
    is_error = case((runs.c.status.in_(ERROR_STATUSES), 1), else_=0)
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
    users = int(conn.execute(select(func.count(func.distinct(runs.c.principal))).where(*conds)).scalar() or 0)
    answered = sum(int(c.runs) - int(c.errors or 0) for c in cells)
    p95 = None
    if answered:  # nearest rank over the runs that got an answer
        p95 = conn.execute(
            select(runs.c.latency_ms)
            .where(*conds, runs.c.status.not_in(ERROR_STATUSES))
            .order_by(runs.c.latency_ms)
            .offset(math.ceil(0.95 * answered) - 1)
            .limit(1)
        ).scalar()
    return RunFigures(
        cells=[
            (
                _day(c.day),
                c.department_id,
                c.use_case_id,
                c.alias,
                int(c.runs),
                int(c.errors or 0),
                float(c.cost),
                float(c.latency),
            )
            for c in cells
        ],
        active=[(_day(d), dept, int(n)) for d, dept, n in active],
        users=users,
        p95=float(p95) if p95 is not None else None,
    )


def _from_rollups(
    conn: Any, principal: Principal, scope: Scope, flt: DashboardFilter, since: datetime, now: datetime
) -> RunFigures:
    """The same figures as :func:`_from_runs`: whole days from the daily rollups, the partial
    days from the runs; the p95 from the rollups' latency histogram, then the runs of its bucket."""
    plan = daily_rollups.plan(conn, since, now)
    departments = [
        d for d in (principal.department_id if scope == "department" else None, flt.department) if d
    ]
    cells: dict[tuple[str, str, str, str], list[float]] = {}
    hist: dict[int, int] = {}
    active_counts: dict[tuple[str, str], int] = {}
    active_sets: dict[tuple[str, str], set[str]] = {}
    users: set[str] = set()

    def add(day: str, dept: str, uc: str, alias: str, n: int, errors: int, cost: float, lat: float) -> None:
        cell = cells.setdefault((day, dept, uc, alias), [0, 0, 0.0, 0.0])
        cell[0] += n
        cell[1] += errors
        cell[2] += cost
        cell[3] += lat

    if plan.first is not None:
        f, u = run_daily_figures, run_daily_users
        fconds = [f.c.day >= plan.first, f.c.day < plan.last, *(f.c.department_id == d for d in departments)]
        uconds = [u.c.day >= plan.first, u.c.day < plan.last, *(u.c.department_id == d for d in departments)]
        if flt.usecase_id:
            fconds.append(f.c.use_case_id == flt.usecase_id)
            uconds.append(u.c.use_case_id == flt.usecase_id)
        for row in conn.execute(select(f).where(*fconds)):
            day, dept = _day(row.day), row.department_id
            add(day, dept, row.use_case_id, row.alias, row.runs, row.errors, row.cost_sum, row.latency_sum)
            for b, count in daily_rollups.Figures.from_row(row).hist.items():
                hist[b] = hist.get(b, 0) + count
        raw_days = plan.raw_days()
        whole = [*uconds, u.c.day.not_in(raw_days)] if raw_days else uconds
        for day, dept, count in conn.execute(
            select(u.c.day, u.c.department_id, func.count(func.distinct(u.c.principal)))
            .where(*whole)
            .group_by(u.c.day, u.c.department_id)
        ):
            active_counts[(_day(day), dept)] = int(count)
        if raw_days:  # days partly rolled up: their users joined with the raw runs' below
            for day, dept, who in conn.execute(
                select(u.c.day, u.c.department_id, u.c.principal).where(*uconds, u.c.day.in_(raw_days))
            ):
                active_sets.setdefault((_day(day), dept), set()).add(who)
        users.update(conn.execute(select(u.c.principal).where(*uconds).distinct()).scalars())
    for lo, hi in plan.raw:
        for row in conn.execute(
            select(*daily_rollups.RAW_COLUMNS).where(*_scoped(principal, scope, flt, lo, hi))
        ):
            day = row.created_at.astimezone(UTC).date().isoformat()
            dept = row.department_id or ""
            error = row.status in ERROR_STATUSES
            add(
                day, dept, row.use_case_id or "", row.alias or "", 1, int(error), row.cost_usd, row.latency_ms
            )
            if not error:
                b = daily_rollups.bucket(row.latency_ms)
                hist[b] = hist.get(b, 0) + 1
            active_sets.setdefault((day, dept), set()).add(row.principal)
            users.add(row.principal)
    for key, who in active_sets.items():
        active_counts[key] = len(who)
    return RunFigures(
        cells=[(*key, int(v[0]), int(v[1]), float(v[2]), float(v[3])) for key, v in cells.items()],
        active=[(day, dept, n) for (day, dept), n in active_counts.items()],
        users=len(users),
        p95=_p95_from_histogram(conn, hist, _scoped(principal, scope, flt, since, now)),
    )


def _p95_from_histogram(conn: Any, hist: dict[int, int], conds: list[Any]) -> float | None:
    """The nearest-rank p95 of the answered runs: the histogram names the bucket holding that
    rank, and the runs of that bucket alone are sorted (exact, as sorting them all)."""
    answered = sum(hist.values())
    if not answered:
        return None
    rank = math.ceil(0.95 * answered)
    below = 0
    for b in sorted(hist):
        if below + hist[b] >= rank:
            low, high = daily_rollups.bucket_range(b)
            bounds = [runs.c.latency_ms >= low] if low is not None else []
            if high is not None:
                bounds.append(runs.c.latency_ms < high)
            value = conn.execute(
                select(runs.c.latency_ms)
                .where(*conds, *bounds, runs.c.status.not_in(ERROR_STATUSES))
                .order_by(runs.c.latency_ms)
                .offset(rank - below - 1)
                .limit(1)
            ).scalar()
            return float(value) if value is not None else None
        below += hist[b]
    return None


def _assemble(
    flt: DashboardFilter,
    since: datetime,
    rf: RunFigures,
    quality: dict[str, Any],
    efficiency: dict[str, Any],
) -> dict[str, Any]:
    by_day: dict[str, dict[str, float]] = {}
    cost_by: dict[str, dict[str, dict[str, float]]] = {"department": {}, "usecase": {}, "model": {}}
    for day, dept, uc, alias, n_runs, n_errors, cost, latency in rf.cells:
        d = by_day.setdefault(day, {"runs": 0, "errors": 0, "latency": 0.0})
        d["runs"] += n_runs
        d["errors"] += n_errors
        d["latency"] += latency
        for name, key in (("department", dept), ("usecase", uc), ("model", alias)):
            slot = cost_by[name].setdefault(key or "—", {"cost_usd": 0.0, "runs": 0})
            slot["cost_usd"] += cost
            slot["runs"] += n_runs
    series: dict[str, dict[str, int]] = {}
    for day, dept, count in rf.active:
        series.setdefault(dept or "—", {})[day] = count
    days = sorted(by_day)
    departments = sorted(series)
    n = sum(int(v["runs"]) for v in by_day.values())
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
            "users": rf.users,
            "errors": errors,
            "error_rate": errors / n if n else None,
            "cost_usd": sum(v["cost_usd"] for v in cost_by["department"].values()),
            "latency_avg_ms": total_latency / n if n else None,
            "latency_p95_ms": rf.p95,
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


def _in_scope(
    principal: Principal,
    scope: Scope,
    flt: DashboardFilter,
    since: Any,
    department: Any,
    who: Any,
    usecase: Any,
) -> list[Any]:
    """``since`` and the caller's scope and filters on a table's department, author and use case columns."""
    conds: list[Any] = [since]
    if scope == "department":
        conds.append(department == principal.department_id)
    elif scope == "own":
        conds.append(who == principal.name)
    if flt.department:
        conds.append(department == flt.department)
    if flt.usecase_id:
        conds.append(usecase == flt.usecase_id)
    return conds


def _quality(
    conn: Any, principal: Principal, scope: Scope, flt: DashboardFilter, since: datetime
) -> dict[str, Any]:
    f = feedback.c
    conds = _in_scope(principal, scope, flt, f.created_at >= since, f.department_id, f.author, f.usecase_id)
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
    t = tasks.c
    conds = _in_scope(
        principal, scope, flt, t.finished_at >= since, t.department_id, t.user_ref, t.usecase_id
    )
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
    """Runs, tokens and cost per deployment over the last ``days``, within the runs.read scope:
    every call a deployment served, evaluation and red-team runs included (they cost the same)."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    conds = _scoped(principal, scope, DashboardFilter(days=days), since, usage=False)
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
