"""Rollups of runs on SQLite and PostgreSQL: the same cells however the work was split."""

from __future__ import annotations

import math
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from aerodrome.evidence import latency_histogram, rollups
from aerodrome.evidence.rollups import Cell, Key
from aerodrome.storage.tables import run_rollups, runs

T0 = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
UC = "triage"


def run_row(rng: random.Random, i: int, created: datetime, **kw: Any) -> dict[str, Any]:
    user = rng.randrange(12)
    status = rng.choices(["ok", "fallback", "output_invalid", "error", "rejected"], [80, 6, 3, 7, 4])[0]
    flags = ["flagged:pii"] if rng.random() < 0.1 else []
    row: dict[str, Any] = {
        "id": f"run{i:06d}",
        "request_id": f"req{i}",
        "created_at": created,
        "endpoint": "usecase",
        "user_id": None if user == 11 else f"user-{user}",
        "principal": "svc-bot" if user == 11 else f"u{user}@example.com",
        "department_id": "hr" if user < 7 else "finance",
        "use_case_id": rng.choice([UC, UC, UC, "other", None]),
        "status": status,
        "http_status": 200,
        "cost_usd": round(rng.lognormvariate(math.log(0.002), 0.8), 6),
        "latency_ms": rng.lognormvariate(math.log(900), 0.7),
        "cache_hit": rng.random() < 0.15,
        "meta": rng.choice([{"usecase": {"flags": flags, "status": status}}, None, {"fallback": True}]),
    }
    if row["meta"] is None or "usecase" not in row["meta"]:
        row["meta"] = {"usecase": {"flags": flags}} if flags else row["meta"]
    row.update(kw)
    return row


def make_runs(n: int, seed: int = 1, days: float = 20, start: datetime = T0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [run_row(rng, i, start + timedelta(seconds=rng.uniform(0, days * 86400))) for i in range(n)]


def insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(runs.insert(), rows)


def expected(
    rows: list[dict[str, Any]], start: datetime | None, end: datetime, department: str | None = None
) -> dict[Key, Cell]:
    """The cells computed straight from the generated rows."""
    out: dict[Key, Cell] = {}
    for r in rows:
        if (
            r["use_case_id"] != UC
            or r["created_at"] >= end
            or (start is not None and r["created_at"] < start)
        ):
            continue
        if department is not None and r["department_id"] != department:
            continue
        key = (UC, r["department_id"] or "", r["user_id"] or r["principal"], r["created_at"].date())
        flagged = bool(((r["meta"] or {}).get("usecase") or {}).get("flags"))
        out.setdefault(key, Cell()).add_run(
            r["status"], r["cache_hit"], r["cost_usd"], r["latency_ms"], flagged
        )
    return out


def assert_same(got: dict[Key, Cell], want: dict[Key, Cell]) -> None:
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert (g.runs, g.ok, g.errors, g.fallbacks, g.flagged, g.cache_hits, g.hist) == (
            w.runs,
            w.ok,
            w.errors,
            w.fallbacks,
            w.flagged,
            w.cache_hits,
            w.hist,
        ), key
        assert g.cost_sum == pytest.approx(w.cost_sum, rel=1e-9, abs=1e-12)
        assert g.cost_sq_sum == pytest.approx(w.cost_sq_sum, rel=1e-9, abs=1e-15)
        assert g.latency_sum == pytest.approx(w.latency_sum, rel=1e-9)


def assert_window(
    engine: Engine, start: datetime | None, end: datetime, want: dict[Key, Cell], **kw: Any
) -> None:
    """rollups.window (sums in SQL) holds the same runs as the cells, per department and user-day."""
    got = rollups.window(engine, UC, start, end, **kw)
    folded = rollups.Window()
    for key, cell in want.items():
        folded.add(key, cell)
    assert got.activity == folded.activity
    assert_same(
        {(UC, d, "", T0.date()): c for d, c in got.totals.items()},
        {(UC, d, "", T0.date()): c for d, c in folded.totals.items()},
    )


def test_buckets_cover_every_latency_once() -> None:
    lows, highs = latency_histogram.bucket_edges_ms()
    assert len(lows) == latency_histogram.N_BUCKETS and highs[-1] == math.inf
    for x in [0.0, 0.3, 1.0, 1.09, 5.5, 123.4, 999.9, 1000.0, 4096.0, 60_000.0, 3e6, 1e9]:
        b = latency_histogram.bucket_of(x)
        assert lows[b] <= x < highs[b], (x, b)
    assert all(h / lo == pytest.approx(2 ** (1 / 8)) for lo, h in zip(lows[1:-1], highs[1:-1], strict=True))


@pytest.mark.parametrize("n", [25, 400, 5_000, 60_000])
def test_quantiles_from_histogram_within_one_bucket_of_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    lat = np.concatenate(
        [rng.lognormal(math.log(700), 0.5, n - n // 10), rng.lognormal(math.log(4000), 0.3, n // 10)]
    )
    hist = [0] * latency_histogram.N_BUCKETS
    for x in lat:
        hist[latency_histogram.bucket_of(float(x))] += 1
    lows, highs = latency_histogram.bucket_edges_ms()
    for q in (0.5, 0.95):
        got = latency_histogram.quantile_from_histogram(hist, q)
        true = float(np.percentile(lat, q * 100))
        b = latency_histogram.bucket_of(true)
        assert lows[max(0, b - 1)] / 1000 <= got.estimate <= highs[b + 1] / 1000  # type: ignore[operator]
        assert got.low <= true / 1000 <= got.high and got.n == n
    assert latency_histogram.quantile_from_histogram([0] * 5, 0.5).estimate is None


def test_rank_interval_covers_the_quantile_of_a_known_distribution() -> None:
    """Over many samples of an exponential, the p95 interval holds the true p95 at least 95% of the time."""
    rng = np.random.default_rng(7)
    true = -math.log(0.05) * 1000  # p95 of Exp(mean 1 s), in ms
    hits = 0
    for _ in range(300):
        hist = [0] * latency_histogram.N_BUCKETS
        for x in rng.exponential(1000, 200):
            hist[latency_histogram.bucket_of(float(x))] += 1
        iv = latency_histogram.quantile_from_histogram(hist, 0.95)
        hits += iv.low <= true / 1000 <= iv.high
    assert hits / 300 >= 0.93


def test_one_update_many_updates_and_fresh_tail_agree(engine: Engine) -> None:
    rows = make_runs(3000)
    insert(engine, rows)
    start, end = T0 + timedelta(days=2, hours=7, minutes=13), T0 + timedelta(days=17, hours=3)
    want = expected(rows, start, end)
    assert_same(rollups.cells(engine, UC, start, end), want)  # nothing rolled up: all raw
    now = T0 + timedelta(days=30)
    assert rollups.update(engine, now=T0 + timedelta(days=9, hours=5)) > 0  # rollups, then a tail
    assert_same(rollups.cells(engine, UC, start, end), want)
    for day in range(10, 31, 3):  # many small updates
        rollups.update(engine, now=T0 + timedelta(days=day, minutes=17), batch_size=97)
        assert_same(rollups.cells(engine, UC, start, end), want)
        assert_window(engine, start, end, want)
    assert rollups.update(engine, now=now) >= 0
    assert rollups.update(engine, now=now) == 0  # idempotent
    assert_same(rollups.cells(engine, UC, start, end), want)
    assert_same(rollups.cells(engine, UC, None, now), expected(rows, None, now))
    assert_same(rollups.cells(engine, UC, start, end, department="hr"), expected(rows, start, end, "hr"))
    assert_window(engine, start, end, expected(rows, start, end, "hr"), department="hr")
    some = {"user-1", "user-4", "svc-bot"}
    assert_same(
        rollups.cells(engine, UC, start, end, user_keys=some),
        {k: c for k, c in want.items() if k[2] in some},
    )
    assert_window(engine, start, end, {k: c for k, c in want.items() if k[2] in some}, user_keys=some)
    with engine.connect() as conn:
        total = conn.execute(
            select(func.sum(run_rollups.c.runs)).where(run_rollups.c.usecase_id == UC)
        ).scalar()
    assert total == sum(1 for r in rows if r["use_case_id"] == UC)


def test_whole_days_and_single_day_windows(engine: Engine) -> None:
    rows = make_runs(1500, seed=3, days=6)
    insert(engine, rows)
    rollups.update(engine, now=T0 + timedelta(days=7))
    for start, end in [
        (T0 + timedelta(days=1), T0 + timedelta(days=4)),  # aligned on days
        (T0 + timedelta(days=2, hours=3), T0 + timedelta(days=2, hours=20)),  # inside one day
        (T0 + timedelta(days=2, hours=3), T0 + timedelta(days=3, hours=1)),  # two partial days
    ]:
        assert_same(rollups.cells(engine, UC, start, end), expected(rows, start, end))
        assert_window(engine, start, end, expected(rows, start, end))


def test_late_records_inside_the_grace_are_not_lost(engine: Engine) -> None:
    rows = make_runs(400, seed=5, days=3)
    insert(engine, rows)
    now = T0 + timedelta(days=3, hours=1)
    rollups.update(engine, now=now)
    assert rollups.watermark(engine) == now - timedelta(seconds=rollups.GRACE_S)
    # A long call that started four minutes before ``now`` is written after the update ran.
    late = run_row(random.Random(9), 900_001, now - timedelta(minutes=4), use_case_id=UC, status="ok")
    insert(engine, [late])
    end = now + timedelta(hours=1)
    everything = [*rows, late]
    assert_same(rollups.cells(engine, UC, T0, end), expected(everything, T0, end))  # in the fresh tail
    assert rollups.update(engine, now=now + timedelta(minutes=10)) == 1  # then in the rollups
    assert_same(rollups.cells(engine, UC, T0, end), expected(everything, T0, end))


def test_records_later_than_the_grace_are_recovered_by_a_rebuild(engine: Engine) -> None:
    rows = make_runs(300, seed=6, days=2)
    insert(engine, rows)
    now = T0 + timedelta(days=3)
    rollups.update(engine, now=now)
    late = run_row(random.Random(8), 900_002, now - timedelta(hours=2), use_case_id=UC, status="ok")
    insert(engine, [late])  # behind the watermark: the rollups do not see it
    end = now + timedelta(hours=1)
    assert rollups.update(engine, now=now + timedelta(minutes=10)) == 0
    missed = sum(c.runs for c in rollups.cells(engine, UC, T0, end).values())
    assert missed == sum(c.runs for c in expected(rows, T0, end).values())  # the late run is missing
    assert rollups.rebuild(engine, now=now + timedelta(minutes=10)) == len(
        [r for r in [*rows, late] if r["use_case_id"] is not None]
    )
    assert_same(rollups.cells(engine, UC, T0, end), expected([*rows, late], T0, end))


def test_concurrent_updates_count_every_run_once(engine: Engine) -> None:
    rows = make_runs(4000, seed=11, days=10)
    insert(engine, rows)
    now = T0 + timedelta(days=11)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            rollups.update(engine, now=now, batch_size=150)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert rollups.update(engine, now=now) == 0
    with engine.connect() as conn:
        total = conn.execute(
            select(func.sum(run_rollups.c.runs)).where(run_rollups.c.usecase_id == UC)
        ).scalar()
    assert total == sum(1 for r in rows if r["use_case_id"] == UC)
    assert_same(rollups.cells(engine, UC, None, now), expected(rows, None, now))
