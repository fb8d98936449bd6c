"""Evidence metrics on generated data with known answers, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from aerodrome.evidence import latency_histogram, metrics, rollups, stats
from aerodrome.evidence.criteria import METRICS
from aerodrome.evidence.metrics import MetricSet, Scope
from aerodrome.evidence.stats import Interval
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import (
    departments,
    feedback,
    review_items,
    runs,
    tasks,
    usecase_versions,
    usecases,
    users,
)

UC = "triage"
MONDAY = datetime(2026, 9, 7, tzinfo=UTC)
START = MONDAY + timedelta(hours=10, minutes=30)  # the pilot window: six weeks and a bit
END = MONDAY + timedelta(days=44, hours=15)  # a Wednesday afternoon
ELIGIBLE = {"hr": 40, "finance": 20}
POSITIVE = {"up": 1.0, "5": 1.0, "4": 0.75}
NEGATIVE = {"down": 0.0, "3": 0.5, "1": 0.0}


@dataclass
class World:
    users: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)


def _user(i: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {} if i == 29 else {"cohort": "volunteer" if i % 2 == 0 else "assigned"}
    return {
        "id": f"user-{i:02d}",
        "email": f"u{i:02d}@example.com",
        "name": "",
        "department_id": "hr" if i < 20 else "finance",
        "roles": ["user"],
        "attributes": attributes,
        "disabled": False,
        "created_at": MONDAY - timedelta(days=60),
    }


def generate(seed: int = 2) -> World:
    """30 users (u00 and u01 heavy), 3,000 runs around the window, 240 rated runs of which 200
    positive (170 of those by u00 and u01), reviews, baseline and treatment tasks with a true
    25% saving of the median task time."""
    rng = random.Random(seed)
    w = World(users=[_user(i) for i in range(30)])
    weights = [15, 15] + [70 / 28] * 28 + [3]  # the last: an API key without a user
    span = (END - START).total_seconds()
    for i in range(3000):
        u = rng.choices(range(31), weights)[0]
        created = START - timedelta(days=3) + timedelta(seconds=rng.uniform(0, span + 5 * 86400))
        status = rng.choices(["ok", "fallback", "output_invalid", "error", "rejected"], [82, 6, 2, 6, 4])[0]
        user = w.users[u] if u < 30 else None
        w.runs.append(
            {
                "id": f"r{i:05d}",
                "request_id": f"q{i}",
                "created_at": created,
                "endpoint": "usecase",
                "user_id": user["id"] if user else None,
                "principal": user["email"] if user else "svc-bot",
                "department_id": user["department_id"] if user else "hr",
                "use_case_id": UC if rng.random() < 0.9 else "other",
                "status": status,
                "http_status": 200,
                "cost_usd": rng.lognormvariate(math.log(0.003), 0.6),
                "latency_ms": rng.lognormvariate(math.log(1200), 0.6),
                "cache_hit": rng.random() < 0.12,
                "meta": {"usecase": {"flags": ["flagged:output"] if rng.random() < 0.07 else []}},
            }
        )
    in_window = [
        r for r in w.runs if r["use_case_id"] == UC and START <= r["created_at"] < END - timedelta(minutes=5)
    ]
    heavy = [r for r in in_window if r["user_id"] in ("user-00", "user-01")]
    light = [r for r in in_window if r not in heavy]
    rated = [(r, True) for r in rng.sample(heavy, 170)]
    rated += [(r, True) for r in rng.sample(light, 30)]
    rated += [(r, False) for r in rng.sample([r for r in light if all(r is not x for x, _ in rated)], 40)]
    for n, (r, positive) in enumerate(rated):
        when = r["created_at"] + timedelta(minutes=2)
        if n % 12 == 0:  # an earlier rating the caller changed later: only the latest counts
            w.feedback.append(
                _feedback(f"f0{n}", r, rng.choice(list(NEGATIVE if positive else POSITIVE)), when)
            )
            when += timedelta(minutes=1)
        w.feedback.append(_feedback(f"f1{n}", r, rng.choice(list(POSITIVE if positive else NEGATIVE)), when))
    for n, r in enumerate(rng.sample(in_window, 60)):  # reviewers' ratings do not count as usefulness
        w.feedback.append(
            _feedback(f"f2{n}", r, "down", r["created_at"] + timedelta(minutes=3), role="reviewer")
        )
    for n, r in enumerate(rng.sample(in_window, 40)):  # flags from feedback, some on flagged runs
        w.feedback.append(
            _feedback(f"f3{n}", r, None, r["created_at"] + timedelta(minutes=4), flags=["wrong"])
        )
    statuses = ["approved"] * 30 + ["edited"] * 10 + ["rejected"] * 5 + ["pending"] * 7
    for n, (r, status) in enumerate(zip(rng.sample(in_window, len(statuses)), statuses, strict=True)):
        w.reviews.append(
            {
                "id": f"v{n}",
                "run_id": r["id"],
                "usecase_id": UC,
                "department_id": r["department_id"],
                "requester": r["principal"],
                "user_id": r["user_id"],
                "reasons": ["sample"],
                "status": status,
                "draft": {"output": "x"},
                "created_at": r["created_at"],
            }
        )
    treatment_runs = [r for r in in_window if r["user_id"] is not None]
    for n in range(600):
        group = "baseline" if n < 300 else "treatment"
        u = w.users[rng.randrange(30)]
        if group == "baseline":  # a time-and-motion study before the pilot
            finished = START - timedelta(days=rng.uniform(5, 20))
            duration = 600 * rng.lognormvariate(0, 0.35)
            run_ids: list[str] = []
        else:
            finished = START + timedelta(seconds=rng.uniform(0, span + 86400 * 2))  # some after the window
            duration = 450 * rng.lognormvariate(0, 0.35)
            run_ids = [r["id"] for r in rng.sample(treatment_runs, rng.randint(1, 3))]
        w.tasks.append(
            {
                "id": f"t{n}",
                "usecase_id": UC,
                "department_id": u["department_id"],
                "user_ref": u["email"],
                "group": group,
                "finished_at": finished,
                "duration_s": duration,
                "run_ids": run_ids,
                "source": "api",
                "created_by": "test",
                "created_at": finished,
            }
        )
    return w


def _feedback(
    fid: str, run: dict[str, Any], rating: str | None, when: datetime, role: str = "caller", flags: Any = ()
) -> dict[str, Any]:
    score = {**POSITIVE, **NEGATIVE}.get(rating) if rating else None
    return {
        "id": fid,
        "run_id": run["id"],
        "usecase_id": UC,
        "department_id": run["department_id"],
        "author": run["principal"] if role == "caller" else "rev@example.com",
        "author_user_id": run["user_id"] if role == "caller" else None,
        "author_role": role,
        "rating": rating,
        "score": score,
        "flags": list(flags),
        "created_at": when,
    }


def load(engine: Engine, w: World) -> None:
    now = MONDAY - timedelta(days=90)
    with engine.begin() as conn:
        conn.execute(
            departments.insert(),
            [{"id": d, "name": d, "eligible_users": n, "created_at": now} for d, n in ELIGIBLE.items()]
            + [{"id": "legal", "name": "legal", "eligible_users": 99, "created_at": now}],
        )
        conn.execute(users.insert(), w.users)
        conn.execute(
            usecases.insert(),
            {"id": UC, "origin": "api", "current_version": 2, "created_at": now, "updated_at": now},
        )
        conn.execute(
            usecase_versions.insert(),
            [
                {
                    "usecase_id": UC,
                    "version": v,
                    "spec": {"departments": d},
                    "spec_hash": "x",
                    "created_at": now,
                    "created_by": "t",
                }
                for v, d in ((1, ["hr", "finance", "legal"]), (2, ["hr", "finance"]))
            ],
        )
        conn.execute(runs.insert(), w.runs)
        conn.execute(feedback.insert(), w.feedback)
        conn.execute(review_items.insert(), w.reviews)
        conn.execute(tasks.insert(), w.tasks)


@pytest.fixture(scope="module")
def world() -> World:
    return generate()


@pytest.fixture
def engine(db_url: str, world: World) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    load(eng, world)
    try:
        yield eng
    finally:
        eng.dispose()


# --- the independent computation -----------------------------------------------------------------


def _user_key(r: dict[str, Any]) -> str:
    return str(r["user_id"] or r["principal"])


def expect(w: World, department: str | None = None, cohort: str | None = None) -> dict[str, Any]:
    """What the metrics must be, from the generated rows, without the code under test."""
    members = {
        k
        for u in w.users
        if cohort is None or u["attributes"].get("cohort") == cohort
        for k in (u["id"], u["email"])
    }

    def ok_user(*keys: Any) -> bool:
        return cohort is None or any(k in members for k in keys)

    def ok_dept(d: Any) -> bool:
        return department is None or d == department

    rs = [
        r
        for r in w.runs
        if r["use_case_id"] == UC
        and START <= r["created_at"] < END
        and ok_dept(r["department_id"])
        and ok_user(r["user_id"], r["principal"])
    ]
    ids = {r["id"] for r in rs}
    latest: dict[str, dict[str, Any]] = {}
    for f in sorted(w.feedback, key=lambda f: f["created_at"]):
        caller = f["author_role"] == "caller" and f["score"] is not None
        in_scope = ok_dept(f["department_id"]) and ok_user(f["author_user_id"], f["author"])
        if caller and START <= f["created_at"] < END and in_scope:
            latest[f["run_id"]] = f
    flagged = {r["id"] for r in rs if r["meta"]["usecase"]["flags"]}
    flagged |= {f["run_id"] for f in w.feedback if f["flags"] and f["run_id"] in ids}
    decided = Counter(
        v["status"]
        for v in w.reviews
        if START <= v["created_at"] < END
        and ok_dept(v["department_id"])
        and ok_user(v["user_id"], v["requester"])
    )
    ts = [t for t in w.tasks if ok_dept(t["department_id"]) and ok_user(t["user_ref"])]
    base = [t["duration_s"] for t in ts if t["group"] == "baseline" and t["finished_at"] < END]
    treat = [t for t in ts if t["group"] == "treatment" and START <= t["finished_at"] < END]
    cost_of = {r["id"]: r["cost_usd"] for r in w.runs}
    answered = [r["latency_ms"] / 1000 for r in rs if r["status"] in ("ok", "fallback", "output_invalid")]
    days: dict[str, set[date]] = {}
    for r in rs:
        days.setdefault(_user_key(r), set()).add(r["created_at"].date())
    return {
        "runs": rs,
        "ratings": list(latest.values()),
        "flagged": flagged,
        "decided": decided,
        "baseline": base,
        "treatment": [t["duration_s"] for t in treat],
        "task_costs": [sum(cost_of[i] for i in t["run_ids"]) for t in treat],
        "answered": answered,
        "days": days,
    }


def test_every_metric_against_an_independent_computation(engine: Engine, world: World) -> None:
    rollups.update(engine, now=MONDAY + timedelta(days=20))  # half rolled up, half fresh tail
    got = metrics.compute(engine, Scope(UC, START, END), tasks_per_day=250, refresh=False)
    e = expect(world)
    v = got.values
    assert set(v) == set(METRICS)

    # quality: 240 rated runs, 200 rated positive; the superseded and the reviewers' ratings ignored
    assert len(e["ratings"]) == 240 and sum(f["score"] >= 0.75 for f in e["ratings"]) == 200
    assert v["useful_rate"] == stats.wilson(200, 240)
    assert v["useful_rate"].estimate == pytest.approx(200 / 240)
    n = len(e["runs"])
    assert v["flag_rate"] == stats.wilson(len(e["flagged"]), n)
    assert v["review_approval_rate"] == stats.wilson(30, 45) and v["edit_ratio"] == stats.wilson(10, 45)
    assert v["eval_pass_rate"].estimate is None

    # efficiency: a true saving of 25% of the median task time
    ts = v["time_saved_pct"]
    assert ts.low < 0.25 < ts.high and ts.n == min(300, len(e["treatment"]))
    assert ts.estimate == pytest.approx(1 - np.median(e["treatment"]) / np.median(e["baseline"]))
    assert got.groups == {"baseline": 300, "control": 0, "treatment": len(e["treatment"])}

    # operations
    statuses = Counter(r["status"] for r in e["runs"])
    assert v["error_rate"] == stats.wilson(statuses["error"], n)
    assert v["fallback_rate"] == stats.wilson(statuses["fallback"] + statuses["output_invalid"], n)
    assert v["cache_hit_rate"] == stats.wilson(sum(r["cache_hit"] for r in e["runs"]), n)
    lows, highs = latency_histogram.bucket_edges_ms()
    for name, q in (("p50_latency_s", 50), ("p95_latency_s", 95)):
        true_ms = float(np.percentile(e["answered"], q)) * 1000
        b = latency_histogram.bucket_of(true_ms)
        assert lows[b - 1] / 1000 <= v[name].estimate <= highs[b + 1] / 1000  # type: ignore[operator]
        assert v[name].low <= true_ms / 1000 <= v[name].high and v[name].n == len(e["answered"])

    # cost
    costs = np.array([r["cost_usd"] for r in e["runs"]])
    half = 1.959964 * costs.std(ddof=1) / math.sqrt(n)
    assert v["cost_per_run_usd"].estimate == pytest.approx(costs.mean())
    assert v["cost_per_run_usd"].low == pytest.approx(costs.mean() - half, rel=1e-4)
    assert v["cost_per_run_usd"].high == pytest.approx(costs.mean() + half, rel=1e-4)
    assert v["cost_per_task_usd"].estimate == pytest.approx(np.mean(e["task_costs"]))
    boot = stats.bootstrap_mean(e["task_costs"])  # resamples depend on the order: close, not equal
    assert (v["cost_per_task_usd"].low, v["cost_per_task_usd"].high) == pytest.approx(
        (boot.low, boot.high), rel=0.02
    )
    want = stats.projected_monthly_cost(e["task_costs"], 250)
    assert v["projected_monthly_cost_usd"].estimate == pytest.approx(want.estimate)
    assert v["projected_monthly_cost_usd"].low == pytest.approx(want.low, rel=0.02)

    # adoption
    active = set(e["days"])
    assert got.concentration["users"] == len(active)
    assert v["adoption_rate"] == stats.wilson(len(active), sum(ELIGIBLE.values()))  # legal left the spec
    last_monday = END.date() - timedelta(days=END.weekday() + 7)
    week = {last_monday + timedelta(days=i) for i in range(7)}
    assert v["weekly_active_users"].estimate == sum(1 for d in e["days"].values() if d & week)
    end_index = last_monday.toordinal() // 7
    firsts = {u: {d.toordinal() // 7 for d in ds} for u, ds in e["days"].items()}
    eligible = [ws for ws in firsts.values() if min(ws) + 4 <= end_index]
    assert v["retention_4w"] == stats.wilson(sum(min(ws) + 4 in ws for ws in eligible), len(eligible))
    runs_by_user = Counter(_user_key(r) for r in e["runs"])
    assert got.concentration["runs"] == pytest.approx(sum(c for _, c in runs_by_user.most_common(2)) / n)
    assert got.concentration["positive_ratings"] == pytest.approx(170 / 200)
    assert got.concentration["positive_ratings"] > stats.CONCENTRATION_FLAG
    assert {u["user"] for u in got.concentration["top_raters"][:2]} == {"user-00", "user-01"}
    assert got.concentration["top_raters"][0]["email"] in ("u00@example.com", "u01@example.com")
    cohorts = Counter(
        next((u["attributes"].get("cohort", "unknown") for u in world.users if u["id"] == k), "unknown")
        for k in active
    )
    assert got.cohorts == dict(cohorts)
    assert got.weekly[0]["week"] == "2026-W37" and len(got.weekly) == 7
    assert sum(wk["runs"] for wk in got.weekly) == n
    assert got.weekly[0]["active_users"] == len(
        {_user_key(r) for r in e["runs"] if r["created_at"] < MONDAY + timedelta(days=7)}
    )


def _same(a: MetricSet, b: MetricSet) -> None:
    for name in METRICS:
        x, y = a.values[name], b.values[name]
        assert (x.estimate is None) == (y.estimate is None), name
        assert x.n == y.n, name
        for p, q in ((x.estimate, y.estimate), (x.low, y.low), (x.high, y.high)):
            assert p == q or (p is not None and q is not None and p == pytest.approx(q, rel=1e-9)), name
    assert (a.concentration, a.cohorts, a.weekly, a.groups) == (
        b.concentration,
        b.cohorts,
        b.weekly,
        b.groups,
    )


def test_the_same_answer_from_raw_runs_rollups_and_a_fresh_tail(engine: Engine) -> None:
    scope = Scope(UC, START, END)
    raw = metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    rollups.update(engine, now=MONDAY + timedelta(days=25))
    _same(metrics.compute(engine, scope, tasks_per_day=100, refresh=False), raw)
    rollups.update(engine, now=END + timedelta(days=30))
    _same(metrics.compute(engine, scope, tasks_per_day=100, refresh=False), raw)
    _same(metrics.compute(engine, scope, tasks_per_day=100), raw)  # refreshed: all rolled up


def test_segments_by_department_and_cohort(engine: Engine, world: World) -> None:
    rollups.update(engine, now=MONDAY + timedelta(days=30))
    split = metrics.by_department(engine, Scope(UC, START, END), refresh=False)
    assert set(split) == {"hr", "finance"}
    for dept in ("hr", "finance"):
        alone = metrics.compute(engine, Scope(UC, START, END, department=dept), refresh=False)
        _same(split[dept], alone)
        e = expect(world, department=dept)
        positives = sum(f["score"] >= 0.75 for f in e["ratings"])
        assert alone.values["useful_rate"] == stats.wilson(positives, len(e["ratings"]))
        assert alone.values["flag_rate"] == stats.wilson(len(e["flagged"]), len(e["runs"]))
        assert alone.values["adoption_rate"] == stats.wilson(len(e["days"]), ELIGIBLE[dept])
        assert alone.groups["baseline"] == len(e["baseline"])
    volunteers = metrics.compute(engine, Scope(UC, START, END, cohort={"cohort": "volunteer"}), refresh=False)
    e = expect(world, cohort="volunteer")
    assert volunteers.cohorts == {"volunteer": len(e["days"])}
    assert volunteers.values["error_rate"].n == len(e["runs"])
    assert volunteers.values["useful_rate"] == stats.wilson(
        sum(f["score"] >= 0.75 for f in e["ratings"]), len(e["ratings"])
    )
    assert volunteers.values["review_approval_rate"].n == sum(
        e["decided"][s] for s in ("approved", "edited", "rejected")
    )
    assert volunteers.groups["treatment"] == len(e["treatment"])
    ts = stats.time_saved(e["baseline"], e["treatment"])
    assert volunteers.values["time_saved_pct"].estimate == pytest.approx(ts.estimate)
    n_volunteers = sum(1 for u in world.users if u["attributes"].get("cohort") == "volunteer")
    assert volunteers.values["adoption_rate"] == stats.wilson(len(e["days"]), n_volunteers)


def test_control_group_is_the_reference_when_present(engine: Engine) -> None:
    rng = random.Random(4)
    rows = [
        {
            "id": f"c{n}",
            "usecase_id": UC,
            "department_id": "hr",
            "user_ref": "u02@example.com",
            "group": "control",
            "finished_at": START + timedelta(days=rng.uniform(0, 30)),
            "duration_s": 900 * rng.lognormvariate(0, 0.3),
            "run_ids": [],
            "source": "api",
            "created_by": "t",
            "created_at": START,
        }
        for n in range(200)
    ]
    with engine.begin() as conn:
        conn.execute(tasks.insert(), rows)
    got = metrics.compute(engine, Scope(UC, START, END), refresh=False)
    assert got.groups["control"] == 200
    assert got.values["time_saved_pct"].low > 0.35  # 450 s against 900 s: about half


def test_no_data_gives_empty_intervals_for_every_metric(engine: Engine) -> None:
    got = metrics.compute(engine, Scope("nothing-here", START, END), refresh=False)
    assert set(got.values) == set(METRICS)
    for name, iv in got.values.items():
        assert iv.estimate is None or name == "weekly_active_users", name
        assert isinstance(iv, Interval)
    assert got.values["weekly_active_users"].estimate == 0
    assert got.concentration["users"] == 0 and got.cohorts == {} and got.groups["treatment"] == 0
    assert metrics.by_department(engine, Scope("nothing-here")) == {}  # refreshes the rollups first
    assert rollups.watermark(engine) is not None
