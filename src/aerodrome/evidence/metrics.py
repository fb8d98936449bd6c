"""The evidence metrics of one use case, per department, cohort and time window, with intervals.

:func:`compute` returns a :class:`MetricSet` holding every metric of
:data:`~aerodrome.evidence.criteria.METRICS` as an :class:`~aerodrome.evidence.stats.Interval`
(an empty one when there is no data) plus the adoption details a report shows (concentration,
cohorts, weekly activity, task groups). Runs are read through the rollups
(:mod:`aerodrome.evidence.rollups`), so the cost does not grow with the run table; feedback,
review items and tasks are read directly (they are one or two orders of magnitude fewer).
docs/evidence-metrics.md defines every metric precisely; the docstrings below say the same.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Any

from sqlalchemy import Connection, Engine, func, select, true

from aerodrome.evidence import feedback_counts, latency_histogram, rollups, stats
from aerodrome.evidence.criteria import METRICS
from aerodrome.evidence.feedback_counts import in_window
from aerodrome.evidence.memo import Memo, digest
from aerodrome.evidence.stats import Interval
from aerodrome.storage.tables import (
    departments,
    review_items,
    runs,
    tasks,
    usecase_versions,
    users,
)
from aerodrome.storage.tables import usecases as usecases_table

DECIDED = ("approved", "edited", "rejected")

INTERVALS: Memo[Interval] = Memo(512)
"""Bootstrapped intervals already computed, by a digest of their values and parameters
(:mod:`aerodrome.evidence.memo`): a report over unchanged tasks does not resample again."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What to measure: one use case, optionally a window, a department and a cohort."""

    usecase_id: str
    start: datetime | None = None  # inclusive, UTC
    end: datetime | None = None  # exclusive, UTC (None: now)
    department: str | None = None
    cohort: Mapping[str, Any] | None = None  # users.attributes must match every key/value


@dataclass(slots=True)
class MetricSet:
    values: dict[str, Interval]
    """Every metric name of criteria.METRICS (an empty Interval when there is no data)."""
    concentration: dict[str, Any] = field(default_factory=dict)
    """{"runs", "positive_ratings": top-two shares; "users": distinct active users;
    "top_users": [{"user", "email", "runs", "positive_ratings"}] (up to five, most runs first);
    "top_raters": the same, most positive ratings first}."""
    cohorts: dict[str, int] = field(default_factory=dict)
    """Active users by users.attributes["cohort"] ("unknown" when absent or not a user)."""
    weekly: list[dict[str, Any]] = field(default_factory=list)
    """[{"week": "2026-W40", "active_users": n, "runs": n}], every ISO week of the window."""
    groups: dict[str, int] = field(default_factory=dict)
    """Tasks per group: baseline, control, treatment."""


def eval_pass_rate(engine: Engine, scope: Scope, confidence: float) -> Interval:
    """Share of eval cases passing in the use case's newest eval run (of its current spec version
    when it has one) finished before the scope's end, with its Wilson interval (aerodrome.evals)."""
    from aerodrome.evals.standing import pass_rate

    return pass_rate(engine, scope.usecase_id, scope.end, confidence)


# --- loading ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Task:
    department: str
    group: str
    duration_s: float
    n_runs: int  # run ids listed


@dataclass(slots=True)
class _Data:
    """Everything one MetricSet needs, already filtered by window and cohort."""

    runs: rollups.Window
    ratings: list[feedback_counts.Rating]  # latest caller rating per run, counted
    feedback_flagged: dict[str, str]  # run id → department, runs a feedback flagged and no guardrail did
    reviews: list[tuple[str, str, int]]  # (department, status, count)
    tasks: list[_Task]
    task_costs: list[tuple[str, float]]  # (department, cost of its runs) per treatment task


def _window(scope: Scope) -> tuple[datetime | None, datetime]:
    start = scope.start.astimezone(UTC) if scope.start is not None else None
    end = (scope.end or datetime.now(UTC)).astimezone(UTC)
    return start, end


def _matches(attributes: Mapping[str, Any] | None, cohort: Mapping[str, Any]) -> bool:
    attrs = attributes or {}
    return all(k in attrs and attrs[k] == v for k, v in cohort.items())


PARTS = frozenset({"activity", "ratings", "flags", "reviews", "tasks", "task_costs"})
"""What :func:`_load` reads besides the run totals (always read: they name the departments)."""

SAMPLE_PARTS: dict[str, frozenset[str]] = {
    "useful_rate": frozenset({"ratings"}),
    "flag_rate": frozenset(),
    "review_approval_rate": frozenset({"reviews"}),
    "edit_ratio": frozenset({"reviews"}),
    "eval_pass_rate": frozenset(),
    "time_saved_pct": frozenset({"tasks"}),
    "weekly_active_users": frozenset({"activity"}),
    "adoption_rate": frozenset(),
    "retention_4w": frozenset({"activity"}),
    "p50_latency_s": frozenset(),
    "p95_latency_s": frozenset(),
    "error_rate": frozenset(),
    "fallback_rate": frozenset(),
    "cache_hit_rate": frozenset(),
    "cost_per_run_usd": frozenset(),
    "cost_per_task_usd": frozenset({"task_costs"}),
    "projected_monthly_cost_usd": frozenset({"task_costs"}),
}
"""The parts of the data each metric's sample size ``n`` depends on (besides the run totals, the
eligible users and the eval run, always read). tests/evidence/test_sample_sizes.py checks that
sizes computed from these parts alone equal those of a full :func:`compute`."""


VOLUME_DEPENDENT = frozenset({"projected_monthly_cost_usd"})
"""The metrics whose sample size ``n`` also depends on ``tasks_per_day`` (empty without one)."""


def _load(engine: Engine, scope: Scope, cohort_keys: set[str] | None, parts: frozenset[str] = PARTS) -> _Data:
    """The data of ``scope``; of the optional ``parts`` (:data:`PARTS`) only those named are read
    (the others are left empty)."""
    start, end = _window(scope)
    uc, dept = scope.usecase_id, scope.department

    def keep(*keys: str | None) -> bool:
        return cohort_keys is None or any(k in cohort_keys for k in keys if k)

    window = rollups.window(
        engine, uc, start, end, department=dept, user_keys=cohort_keys, activity="activity" in parts
    )
    with engine.connect() as conn:
        ratings = feedback_counts.ratings(conn, scope, start, end, keep) if "ratings" in parts else []
        flagged = feedback_counts.flagged_runs(conn, scope, start, end, keep) if "flags" in parts else {}
        reviews = _reviews(conn, scope, start, end, keep) if "reviews" in parts else []
        task_list = _tasks(conn, scope, start, end, keep) if "tasks" in parts else []
        task_costs = _task_costs(conn, scope, start, end, keep) if "task_costs" in parts else []
    return _Data(window, ratings, flagged, reviews, task_list, task_costs)


def _reviews(
    conn: Connection, scope: Scope, start: datetime | None, end: datetime, keep: Any
) -> list[tuple[str, str, int]]:
    """(department, status, count) of the decided review items in scope."""
    uc, dept = scope.usecase_id, scope.department
    conds = [review_items.c.usecase_id == uc, in_window(review_items.c.created_at, start, end)]
    conds.append(review_items.c.status.in_(DECIDED))
    if dept is not None:
        conds.append(review_items.c.department_id == dept)
    reviews: Counter[tuple[str, str]] = Counter()
    query = (
        select(
            review_items.c.department_id,
            review_items.c.user_id,
            review_items.c.requester,
            review_items.c.status,
            func.count(),
        )
        .where(*conds)
        .group_by(
            review_items.c.department_id,
            review_items.c.user_id,
            review_items.c.requester,
            review_items.c.status,
        )
    )
    for d, user_id, requester, status, n in conn.execute(query):
        if keep(user_id, requester):
            reviews[(d, status)] += n
    return [(d, s, n) for (d, s), n in reviews.items()]


def _task_filter(scope: Scope, start: datetime | None, end: datetime) -> list[Any]:
    # Baseline studies usually precede the pilot: baseline tasks count from any time before the end.
    finished = in_window(tasks.c.finished_at, start, end)
    conds = [
        tasks.c.usecase_id == scope.usecase_id,
        (tasks.c.group == "baseline") & (tasks.c.finished_at < end) | finished,
    ]
    if scope.department is not None:
        conds.append(tasks.c.department_id == scope.department)
    return conds


def _tasks(conn: Connection, scope: Scope, start: datetime | None, end: datetime, keep: Any) -> list[_Task]:
    n_runs = func.json_array_length(tasks.c.run_ids)
    query = select(tasks.c.department_id, tasks.c.user_ref, tasks.c.group, tasks.c.duration_s, n_runs).where(
        *_task_filter(scope, start, end)
    )
    return [
        _Task(d or "", group, duration, int(n or 0))
        for d, user_ref, group, duration, n in conn.execute(query)
        if keep(user_ref)
    ]


def _task_costs(
    conn: Connection, scope: Scope, start: datetime | None, end: datetime, keep: Any
) -> list[tuple[str, float]]:
    """(department, summed cost of its recorded runs) of each treatment task listing runs."""
    fn = "json_array_elements_text" if conn.dialect.name == "postgresql" else "json_each"
    ids = getattr(func, fn)(tasks.c.run_ids).table_valued("value")
    query = (
        select(tasks.c.id, tasks.c.department_id, tasks.c.user_ref, func.sum(runs.c.cost_usd))
        .select_from(tasks.join(ids, true()).join(runs, runs.c.id == ids.c.value))
        .where(*_task_filter(scope, start, end), tasks.c.group == "treatment")
        .group_by(tasks.c.id, tasks.c.department_id, tasks.c.user_ref)
        .order_by(tasks.c.id)
    )
    return [(d or "", float(cost)) for _id, d, user_ref, cost in conn.execute(query) if keep(user_ref)]


def _eligible(engine: Engine, scope: Scope, user_rows: list[Any]) -> dict[str, int]:
    """Eligible users per department the use case is live in (its current spec's departments).

    With a cohort, a department's eligible users are its enabled users matching the cohort."""
    with engine.connect() as conn:
        spec = conn.execute(
            select(usecase_versions.c.spec)
            .select_from(
                usecases_table.join(
                    usecase_versions,
                    (usecase_versions.c.usecase_id == usecases_table.c.id)
                    & (usecase_versions.c.version == usecases_table.c.current_version),
                )
            )
            .where(usecases_table.c.id == scope.usecase_id)
        ).scalar()
        live = list((spec or {}).get("departments") or [])
        counts = dict(conn.execute(select(departments.c.id, departments.c.eligible_users)).all())
    if scope.cohort is not None:
        counts = dict(
            Counter(
                r.department_id for r in user_rows if not r.disabled and _matches(r.attributes, scope.cohort)
            )
        )
    return {d: int(counts.get(d) or 0) for d in live}


# --- computing -------------------------------------------------------------------------------


def _mean_normal(total: float, total_sq: float, n: int, confidence: float) -> Interval:
    """Mean with the normal interval from a sum and a sum of squares (low bound at least 0)."""
    if n == 0:
        return Interval.empty(confidence)
    mean = total / n
    if n == 1:
        return Interval(mean, 0.0, math.inf, 1, confidence)
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    half = NormalDist().inv_cdf(1 - (1 - confidence) / 2) * math.sqrt(var / n)
    return Interval(mean, max(0.0, mean - half), mean + half, n, confidence)


def _last_complete_week(start: datetime | None, end: datetime) -> date | None:
    """Monday of the last ISO week that lies wholly inside [start, end), if any: the week before
    the one containing ``end`` (if ``end`` is a Monday 00:00, the week that just ended)."""
    last = end.date() - timedelta(days=end.weekday() + 7)
    if start is not None and datetime.combine(last, datetime.min.time(), tzinfo=UTC) < start:
        return None
    return last


def _metric_set(
    data: _Data,
    scope: Scope,
    eligible: int,
    emails: Mapping[str, str],
    cohort_of: Mapping[str, str],
    tasks_per_day: float | None,
    confidence: float,
    eval_rate: Interval,
    intervals: bool = True,
) -> MetricSet:
    """The metrics of ``data``. ``intervals=False`` leaves out the bootstraps: the bootstrapped
    metrics then carry their ``n`` (and point estimate) with an unbounded interval."""
    start, end = _window(scope)
    total = rollups.Cell()
    runs_by_user: Counter[str] = Counter()
    weeks_by_user: dict[str, set[int]] = defaultdict(set)
    runs_by_week: Counter[int] = Counter()
    for cell in data.runs.totals.values():
        total.merge(cell)
    for (_dept, user, week), n in data.runs.activity.items():
        if n > 0:
            runs_by_user[user] += n
            weeks_by_user[user].add(week)
            runs_by_week[week] += n
    active = {u for u, n in runs_by_user.items() if n > 0}
    wilson = stats.wilson
    v: dict[str, Interval] = {}

    # quality
    positives = sum(r.n for r in data.ratings if r.positive)
    v["useful_rate"] = wilson(positives, sum(r.n for r in data.ratings), confidence)
    v["flag_rate"] = wilson(
        min(total.runs, total.flagged + len(data.feedback_flagged)), total.runs, confidence
    )
    decided = Counter[str]()
    for _d, status, n in data.reviews:
        decided[status] += n
    n_decided = sum(decided.values())
    v["review_approval_rate"] = wilson(decided["approved"], n_decided, confidence)
    v["edit_ratio"] = wilson(decided["edited"], n_decided, confidence)
    v["eval_pass_rate"] = eval_rate

    # efficiency
    by_group: dict[str, list[float]] = {g: [] for g in ("baseline", "control", "treatment")}
    for t in data.tasks:
        by_group.setdefault(t.group, []).append(t.duration_s)
    reference = by_group["control"] or by_group["baseline"]
    if intervals:
        treatment = by_group["treatment"]
        resamples = resamples_for(len(reference) + len(treatment))
        v["time_saved_pct"] = INTERVALS.get(
            digest("time_saved", (reference, treatment), (confidence, resamples)),
            lambda: stats.time_saved(reference, treatment, confidence, resamples=resamples),
        )
    else:
        v["time_saved_pct"] = _unresampled(
            reference and by_group["treatment"], min(len(reference), len(by_group["treatment"])), confidence
        )

    # adoption
    last_week = _last_complete_week(start, end)
    if last_week is not None:
        last = rollups.week_index(last_week)
        wau = sum(1 for weeks in weeks_by_user.values() if last in weeks)
        v["weekly_active_users"] = Interval.exact(wau, runs_by_week[last])
    else:
        v["weekly_active_users"] = Interval.empty(confidence, 0.0, math.inf)
    v["adoption_rate"] = wilson(min(len(active), eligible), eligible, confidence)
    end_week = rollups.week_index(
        last_week if last_week is not None else (end - timedelta(microseconds=1)).date()
    )
    v["retention_4w"] = stats.retention_4w_indexed(weeks_by_user, end_week, confidence)

    # operations
    hist = [0] * latency_histogram.N_BUCKETS
    for b, n in total.hist.items():
        hist[b] += n
    v["p50_latency_s"] = latency_histogram.quantile_from_histogram(hist, 0.50, confidence)
    v["p95_latency_s"] = latency_histogram.quantile_from_histogram(hist, 0.95, confidence)
    v["error_rate"] = wilson(total.errors, total.runs, confidence)
    v["fallback_rate"] = wilson(total.fallbacks, total.runs, confidence)
    v["cache_hit_rate"] = wilson(total.cache_hits, total.runs, confidence)

    # cost
    v["cost_per_run_usd"] = _mean_normal(total.cost_sum, total.cost_sq_sum, total.runs, confidence)
    task_costs = [cost for _d, cost in data.task_costs]
    if intervals:
        resamples = resamples_for(len(task_costs))
        v["cost_per_task_usd"] = INTERVALS.get(
            digest("bootstrap_mean", (task_costs,), (confidence, resamples)),
            lambda: stats.bootstrap_mean(task_costs, confidence, resamples=resamples),
        )
    else:
        v["cost_per_task_usd"] = _unresampled(task_costs, len(task_costs), confidence)
    v["projected_monthly_cost_usd"] = _projection(
        data, v["cost_per_task_usd"], v["cost_per_run_usd"], tasks_per_day, confidence
    )

    missing = set(METRICS) - set(v)
    assert not missing, missing

    positives_by_user: Counter[str] = Counter()
    for r in data.ratings:
        if r.positive:
            positives_by_user[r.user] += r.n

    def describe(user: str) -> dict[str, Any]:
        return {
            "user": user,
            "email": emails.get(user),
            "runs": runs_by_user.get(user, 0),
            "positive_ratings": positives_by_user.get(user, 0),
        }

    concentration = {
        "runs": stats.concentration(runs_by_user),
        "positive_ratings": stats.concentration(positives_by_user),
        "users": len(active),
        "top_users": [describe(u) for u, _ in runs_by_user.most_common(5)],
        "top_raters": [describe(u) for u, _ in positives_by_user.most_common(5)],
    }
    cohorts = dict(Counter(cohort_of.get(u, "unknown") for u in active))
    weekly = _weekly(start, end, weeks_by_user, runs_by_week)
    groups = {g: len(by_group[g]) for g in ("baseline", "control", "treatment")}
    return MetricSet({name: v[name] for name in METRICS}, concentration, cohorts, weekly, groups)


def _unresampled(values: Any, n: int, confidence: float) -> Interval:
    """Stands in for a bootstrapped interval when only its sample size is wanted: as the
    bootstrap, empty without values, else ``n`` (estimate 0.0 as a marker, no bounds)."""
    if not values:
        return Interval.empty(confidence)
    return Interval(0.0, -math.inf, math.inf, n, confidence)


def _projection(
    data: _Data, per_task: Interval, per_run: Interval, tasks_per_day: float | None, confidence: float
) -> Interval:
    """Monthly cost (30 days) at the declared volume; empty without a volume.

    From the treatment tasks' costs when there are any: the cost per task scaled by
    ``tasks_per_day x 30``, which is exactly ``stats.projected_monthly_cost`` of the same costs
    (one bootstrap, not two). Else the cost per run times the runs per task (mean number of run
    ids of the tasks that list some, else 1) times the volume."""
    if tasks_per_day is None:
        return Interval.empty(confidence, 0.0, math.inf)
    if tasks_per_day < 0:
        raise ValueError("tasks_per_day must be non-negative")
    if per_task.estimate is not None:
        return per_task.scaled(tasks_per_day * 30)
    if per_run.estimate is None:
        return Interval.empty(confidence, 0.0, math.inf)
    listed = [t.n_runs for t in data.tasks if t.n_runs]
    runs_per_task = sum(listed) / len(listed) if listed else 1.0
    return per_run.scaled(runs_per_task * tasks_per_day * 30)


def _week_label(index: int) -> str:
    return stats.iso_week(date.fromordinal(index * 7 + 1))


def _weekly(
    start: datetime | None,
    end: datetime,
    weeks_by_user: Mapping[str, set[int]],
    runs_by_week: Mapping[int, int],
) -> list[dict[str, Any]]:
    first = rollups.week_index(start.date()) if start is not None else min(runs_by_week, default=None)
    if first is None:
        return []
    last = rollups.week_index((end - timedelta(microseconds=1)).date())
    users_by_week: Counter[int] = Counter()
    for weeks in weeks_by_user.values():
        users_by_week.update(weeks)
    return [
        {"week": _week_label(w), "active_users": users_by_week[w], "runs": runs_by_week.get(w, 0)}
        for w in range(first, last + 1)
    ]


def _users(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(users.c.id, users.c.email, users.c.department_id, users.c.attributes, users.c.disabled)
            )
        )


def _sets(
    engine: Engine,
    scope: Scope,
    *,
    tasks_per_day: float | None,
    confidence: float,
    overall: bool,
    split: bool,
    intervals: bool = True,
    department_intervals: bool | None = None,
    parts: frozenset[str] = PARTS,
) -> tuple[MetricSet | None, dict[str, MetricSet]]:
    """The scope's MetricSet (``overall``) and one per department with runs (``split``), from
    one read of the data. ``intervals=False`` skips the bootstraps (see :func:`sample_sizes`);
    ``department_intervals`` does so for the departments' sets (default: as ``intervals``)."""
    user_rows = _users(engine)
    cohort_keys = None
    if scope.cohort is not None:
        cohort_keys = {k for r in user_rows if _matches(r.attributes, scope.cohort) for k in (r.id, r.email)}
    emails = {r.id: r.email for r in user_rows}
    cohort_of: dict[str, str] = {}
    for r in user_rows:
        label = (r.attributes or {}).get("cohort")
        cohort_of[r.id] = cohort_of[r.email] = "unknown" if label is None else str(label)
    data = _load(engine, scope, cohort_keys, parts)
    eval_rate = eval_pass_rate(engine, scope, confidence)
    whole = None
    if overall:
        n_eligible = (
            _department_eligible(engine, scope, user_rows)
            if scope.department is not None
            else sum(_eligible(engine, scope, user_rows).values())
        )
        whole = _metric_set(
            data, scope, n_eligible, emails, cohort_of, tasks_per_day, confidence, eval_rate, intervals
        )
    out: dict[str, MetricSet] = {}
    if not split:
        return whole, out
    for dept in sorted(d for d, c in data.runs.totals.items() if c.runs > 0 and d):
        part = _Data(
            rollups.Window(
                {dept: data.runs.totals[dept]}, {k: n for k, n in data.runs.activity.items() if k[0] == dept}
            ),
            [r for r in data.ratings if r.department == dept],
            {rid: d for rid, d in data.feedback_flagged.items() if d == dept},
            [r for r in data.reviews if r[0] == dept],
            [t for t in data.tasks if t.department == dept],
            [tc for tc in data.task_costs if tc[0] == dept],
        )
        sub = Scope(scope.usecase_id, scope.start, scope.end, dept, scope.cohort)
        n_eligible = _department_eligible(engine, sub, user_rows)
        out[dept] = _metric_set(
            part,
            sub,
            n_eligible,
            emails,
            cohort_of,
            tasks_per_day,
            confidence,
            eval_rate,
            intervals if department_intervals is None else department_intervals,
        )
    return whole, out


def _department_eligible(engine: Engine, scope: Scope, user_rows: list[Any]) -> int:
    """Eligible users of ``scope.department``: its departments.eligible_users, or with a cohort
    its enabled users matching the cohort."""
    if scope.cohort is not None:
        return sum(
            1
            for r in user_rows
            if r.department_id == scope.department and not r.disabled and _matches(r.attributes, scope.cohort)
        )
    with engine.connect() as conn:
        n = conn.execute(
            select(departments.c.eligible_users).where(departments.c.id == scope.department)
        ).scalar()
    return int(n or 0)


BOOTSTRAP_WORK = 10_000_000  # resampled values one interval may cost


def resamples_for(n: int) -> int:
    """Bootstrap resamples for n values: 2,000 up to 5,000 values, fewer above (at least 500), so a
    report over hundreds of thousands of tasks stays fast; with that many values the percentile
    interval is stable with 500 resamples."""
    if n <= BOOTSTRAP_WORK // stats.DEFAULT_RESAMPLES:
        return stats.DEFAULT_RESAMPLES
    return max(500, BOOTSTRAP_WORK // n)


def compute(
    engine: Engine,
    scope: Scope,
    *,
    tasks_per_day: float | None = None,
    confidence: float = 0.95,
    refresh: bool = True,
) -> MetricSet:
    """Every metric of the use case in ``scope`` (see docs/evidence-metrics.md).

    ``refresh`` first brings the rollups up to date when they trail by more than a few minutes
    (:func:`rollups.catch_up`: milliseconds per thousand new runs; the first call on a large
    table does the initial pass). Without it the answer is the same, read from older rollups
    plus a longer raw tail."""
    if refresh:
        rollups.catch_up(engine)
    whole, _ = _sets(
        engine, scope, tasks_per_day=tasks_per_day, confidence=confidence, overall=True, split=False
    )
    assert whole is not None
    return whole


def by_department(
    engine: Engine,
    scope: Scope,
    *,
    tasks_per_day: float | None = None,
    confidence: float = 0.95,
    refresh: bool = True,
) -> dict[str, MetricSet]:
    """One MetricSet per department with runs of the use case in scope (everything read once).

    ``scope.department``, if set, limits it to that department. Keywords as for :func:`compute`."""
    if refresh:
        rollups.catch_up(engine)
    return _sets(
        engine, scope, tasks_per_day=tasks_per_day, confidence=confidence, overall=False, split=True
    )[1]


BOOTSTRAPPED = frozenset({"time_saved_pct", "cost_per_task_usd", "projected_monthly_cost_usd"})
"""The metrics whose interval is a bootstrap (the others are closed-form and cheap)."""


def compute_with_departments(
    engine: Engine,
    scope: Scope,
    *,
    tasks_per_day: float | None = None,
    confidence: float = 0.95,
    refresh: bool = True,
    department_bootstraps: bool = True,
) -> tuple[MetricSet, dict[str, MetricSet]]:
    """``(compute(...), by_department(...))`` of the same scope, from one read of the data (what a
    report shows). Keywords as for :func:`compute`.

    ``department_bootstraps=False`` skips the bootstraps of the departments' sets: their
    :data:`BOOTSTRAPPED` metrics then carry only their ``n`` (estimate 0.0, unbounded interval)
    and must not be shown; every other metric is exactly as :func:`by_department` gives it."""
    if refresh:
        rollups.catch_up(engine)
    whole, parts = _sets(
        engine,
        scope,
        tasks_per_day=tasks_per_day,
        confidence=confidence,
        overall=True,
        split=True,
        department_intervals=department_bootstraps,
    )
    assert whole is not None
    return whole, parts


@dataclass(frozen=True, slots=True)
class SampleSizes:
    """The ``n`` of every metric, for the scope and for each department with runs in it."""

    overall: dict[str, int]
    departments: dict[str, dict[str, int]]


def sample_sizes(
    engine: Engine,
    scope: Scope,
    metrics: Collection[str] | None = None,
    *,
    tasks_per_day: float | None = None,
    refresh: bool = True,
) -> SampleSizes:
    """The sample size ``n`` of ``metrics`` (default: all) as :func:`compute` and
    :func:`by_department` give it on the same scope, read once, without the bootstraps an
    interval needs and reading only what those sizes depend on (:data:`SAMPLE_PARTS`): what a
    gate's minimum-samples check asks."""
    names = list(METRICS) if metrics is None else list(metrics)
    unknown = [m for m in names if m not in SAMPLE_PARTS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}")
    if refresh:
        rollups.catch_up(engine)
    parts = frozenset().union(*(SAMPLE_PARTS[m] for m in names))
    whole, per_department = _sets(
        engine,
        scope,
        tasks_per_day=tasks_per_day,
        confidence=0.95,
        overall=True,
        split=True,
        intervals=False,
        parts=parts,
    )
    assert whole is not None

    def sizes(m: MetricSet) -> dict[str, int]:
        return {name: m.values[name].n for name in names}

    return SampleSizes(sizes(whole), {d: sizes(m) for d, m in per_department.items()})
