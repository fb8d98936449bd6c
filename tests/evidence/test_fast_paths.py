"""The evidence page's fast paths give the same numbers as the slow ones, on SQLite and PostgreSQL.

A gate's sample checks read sizes once without bootstraps (``metrics.sample_sizes``), a report
reads the whole scope and its departments once (``metrics.compute_with_departments``), the
median bootstrap counts instead of partitioning and retention takes week indices: each is
checked here against the computation it replaces, on the same data, so a fast path that
drifts from the full one fails.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, update

from aerodrome.evidence import metrics, readiness, rollups, stats, transitions
from aerodrome.evidence import report as pilot_report
from aerodrome.evidence.criteria import METRICS
from aerodrome.evidence.gate_and_report import gate_and_report
from aerodrome.evidence.metrics import Scope
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import usecase_versions, usecases
from tests.evidence.test_metrics import END, MONDAY, START, UC, World, generate, load

SPEC: dict[str, Any] = {
    "id": UC,
    "title": "Triage",
    "departments": ["hr", "finance"],
    "inputs": {"ticket": {"type": "string", "required": True}},
    "prompt": "{{ ticket }}",
    "model": "chat-small",
    "success_criteria": [
        {"metric": "useful_rate", "at_least": 0.7, "min_samples": 200},
        {"metric": "time_saved_pct", "at_least": 0.15, "min_samples": 50},
        {"metric": "p95_latency_s", "at_most": 4, "min_samples": 100},
        {"metric": "retention_4w", "at_least": 0.3, "min_samples": 5},
        {"metric": "adoption_rate", "at_least": 0.3, "min_samples": 50, "segment": {"department": "hr"}},
        {
            "metric": "review_approval_rate",
            "at_least": 0.5,
            "min_samples": 5,
            "segment": {"department": "hr"},
        },
        {"metric": "cost_per_task_usd", "at_most": 1, "min_samples": 5, "segment": {"department": "legal"}},
        {
            "metric": "flag_rate",
            "at_most": 0.2,
            "min_samples": 5,
            "segment": {"cohort": {"cohort": "volunteer"}},
        },
        {
            "metric": "weekly_active_users",
            "at_least": 3,
            "min_samples": 5,
            "segment": {"cohort": {"cohort": "x"}},
        },
    ],
}


@pytest.fixture(scope="module")
def world() -> World:
    return generate(seed=5)


@pytest.fixture
def engine(db_url: str, world: World) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    load(eng, world)
    try:
        yield eng
    finally:
        eng.dispose()


def _sizes(m: metrics.MetricSet) -> dict[str, int]:
    return {name: iv.n for name, iv in m.values.items()}


@pytest.mark.parametrize("tasks_per_day", [None, 100.0])
def test_sample_sizes_equal_those_of_the_full_computation(
    engine: Engine, tasks_per_day: float | None
) -> None:
    rollups.update(engine, now=MONDAY + timedelta(days=25))  # rollups plus a raw fresh tail
    for scope in (
        Scope(UC, START, END),
        Scope(UC),
        Scope(UC, START, END, department="hr"),
        Scope(UC, START, END, cohort={"cohort": "volunteer"}),
    ):
        full = metrics.compute(engine, scope, tasks_per_day=tasks_per_day, refresh=False)
        split = metrics.by_department(engine, scope, tasks_per_day=tasks_per_day, refresh=False)
        every = metrics.sample_sizes(engine, scope, tasks_per_day=tasks_per_day, refresh=False)
        assert every.overall == _sizes(full), scope
        assert every.departments == {d: _sizes(m) for d, m in split.items()}, scope
        for name in METRICS:  # each alone reads only what its size depends on
            one = metrics.sample_sizes(engine, scope, [name], tasks_per_day=tasks_per_day, refresh=False)
            assert one.overall == {name: full.values[name].n}, (scope, name)
            assert one.departments == {d: {name: m.values[name].n} for d, m in split.items()}, (scope, name)
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics.sample_sizes(engine, Scope(UC), ["no_such_metric"])


def test_one_read_for_a_report_equals_compute_and_by_department(engine: Engine) -> None:
    rollups.update(engine, now=MONDAY + timedelta(days=30))
    scope = Scope(UC, START, END)
    whole, split = metrics.compute_with_departments(engine, scope, tasks_per_day=100, refresh=False)
    assert whole == metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    assert split == metrics.by_department(engine, scope, tasks_per_day=100, refresh=False)
    assert set(split) == {"hr", "finance"}
    lean_whole, lean = metrics.compute_with_departments(
        engine, scope, tasks_per_day=100, refresh=False, department_bootstraps=False
    )
    assert lean_whole == whole and set(lean) == set(split)
    for dept, m in lean.items():  # a report's department sets: exact but for the bootstraps it skips
        for name in METRICS:
            if name in metrics.BOOTSTRAPPED:
                assert m.values[name].n == split[dept].values[name].n, name
            else:
                assert m.values[name] == split[dept].values[name], name
        assert (m.concentration, m.cohorts, m.weekly, m.groups) == (
            split[dept].concentration,
            split[dept].cohorts,
            split[dept].weekly,
            split[dept].groups,
        )


def test_gate_sample_checks_equal_one_full_computation_per_criterion(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(usecase_versions).values(spec=SPEC))
    checks = readiness.samples(engine, UC)
    assert len(checks) == len(SPEC["success_criteria"])
    for check, c in zip(checks, SPEC["success_criteria"], strict=True):
        seg = c.get("segment") or {}
        scope = Scope(UC, department=seg.get("department"), cohort=seg.get("cohort"))
        n = metrics.compute(engine, scope).values[c["metric"]].n  # what the gate computed before
        assert check.detail.endswith(f"{n} of {c['min_samples']} samples"), check
        assert check.ok == (n >= c["min_samples"])
    assert any(c.ok for c in checks) and not all(c.ok for c in checks)


@pytest.mark.parametrize("bootstrapped", [False, True])
def test_report_shows_what_compute_and_by_department_give(engine: Engine, bootstrapped: bool) -> None:
    spec = dict(SPEC)
    if bootstrapped:  # a department criterion on a bootstrapped metric: its sets are bootstrapped
        extra = {
            "metric": "time_saved_pct",
            "at_least": 0.1,
            "min_samples": 5,
            "segment": {"department": "hr"},
        }
        spec["success_criteria"] = [*SPEC["success_criteria"], extra]
    with engine.begin() as conn:
        conn.execute(update(usecase_versions).values(spec=spec))
    data = pilot_report.build(engine, UC)
    scope = Scope(UC)
    whole = metrics.compute(engine, scope, refresh=False)
    split = metrics.by_department(engine, scope, refresh=False)
    assert data["metrics"]["useful_rate"]["n"] == whole.values["useful_rate"].n
    for name in ("time_saved_pct", "cost_per_task_usd", "retention_4w", "p95_latency_s"):
        got = {k: data["metrics"][name][k] for k in ("estimate", "low", "high", "n")}
        want = whole.values[name].as_dict()
        assert got == {k: want[k] for k in ("estimate", "low", "high", "n")}, name
    for dept, shown in data["adoption"]["by_department"].items():
        for name, interval in shown.items():
            assert interval == split[dept].values[name].as_dict(), (dept, name)
    by_label = {c["criterion"]: c for c in data["criteria"]}
    if bootstrapped:  # read from the department's set, as before the fast path
        label = next(k for k in by_label if k.startswith("time_saved_pct") and "hr" in k)
        assert by_label[label]["interval"] == split["hr"].values["time_saved_pct"].as_dict()


@pytest.mark.parametrize("seed", range(40))
def test_median_bootstrap_by_counting_equals_numpy_median(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 3, int(rng.integers(4, 300)), 1500, 2001]))
    values = np.round(rng.lognormal(3, 1, n), int(rng.integers(0, 3)))  # rounding makes ties
    resamples = int(rng.integers(100, 2500))
    fast = stats._replicates(values, stats._median, resamples, np.random.default_rng(seed))
    slow = stats._replicates(values, lambda a: np.median(a, axis=1), resamples, np.random.default_rng(seed))
    assert np.array_equal(fast, slow)


def test_retention_from_week_indices_equals_retention_from_labels() -> None:
    rng = random.Random(3)
    for _ in range(50):
        weeks = {
            f"u{i}": {rng.randrange(100_000, 100_030) for _ in range(rng.randint(0, 6))} for i in range(40)
        }
        end = rng.choice([None, 100_010, 100_020, 100_040])
        labels = {u: {stats._week_label(w) for w in ws} for u, ws in weeks.items()}
        want = stats.retention_4w(labels, None if end is None else stats._week_label(end))
        assert stats.retention_4w_indexed(weeks, end) == want


@pytest.mark.parametrize("volume", [None, 100, "projected_cost"])
def test_evidence_tab_shares_the_reports_read_with_the_gate(engine: Engine, volume: Any) -> None:
    """The evidence tab gives the gate the sample sizes of the report's read
    (``report.build_with_sizes``): its checks and the report are those computed separately."""
    spec = dict(SPEC)
    if volume is not None:
        spec["projected_volume"] = {"tasks_per_day": 100}
    if volume == "projected_cost":  # its size depends on the volume: the gate counts it itself
        cost = {"metric": "projected_monthly_cost_usd", "at_most": 1e6, "min_samples": 5}
        spec["success_criteria"] = [*SPEC["success_criteria"], cost]
    with engine.begin() as conn:
        conn.execute(update(usecase_versions).values(spec=spec))
        conn.execute(update(usecases).values(stage="pilot"))
    data, sizes = pilot_report.build_with_sizes(engine, UC)
    assert readiness.samples(engine, UC, known=sizes) == readiness.samples(engine, UC)
    assert ("projected_monthly_cost_usd" in sizes.overall) == (volume is None)
    evidence = readiness.gate_evidence(engine, None, lambda: None)  # type: ignore[arg-type]
    evidence = replace(evidence, evals=None, cost=None)
    tab = gate_and_report(engine, UC, actor="t", evidence=evidence)
    alone = transitions.advance(
        engine, UC, "decision", actor="t", evidence=replace(evidence, samples=None), dry_run=True
    )
    separate = transitions.advance(engine, UC, "decision", actor="t", evidence=evidence, dry_run=True)
    assert tab.next == "decision" and tab.gate == separate and tab.gate != alone
    assert tab.report is not None and tab.report_error is None
    for got in (tab.report, data):
        want = pilot_report.build(engine, UC, now=got["generated_at"])
        assert got == want
