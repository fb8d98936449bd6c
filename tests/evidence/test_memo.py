"""The evidence memos never answer with a stale result, on SQLite and PostgreSQL.

A report keeps its bootstrapped intervals and the rollup part of its windows between views
(aerodrome.evidence.memo). Each test changes what a memo was computed from (a task, a run in the
fresh tail, the rollups, a rebuild over back-dated runs) and checks the next answer is the one a
computation without any memo gives.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select

from aerodrome.evidence import metrics, rollups
from aerodrome.evidence.memo import Memo, digest
from aerodrome.evidence.metrics import INTERVALS, Scope
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import run_rollup_state, tasks
from tests.evidence.test_metrics import END, START, UC, World, generate, load
from tests.evidence.test_rollups import insert as insert_runs
from tests.evidence.test_rollups import run_row


@pytest.fixture(scope="module")
def world() -> World:
    return generate(seed=9)


@pytest.fixture
def engine(db_url: str, world: World) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    load(eng, world)
    INTERVALS.clear()
    rollups.WINDOWS.clear()
    try:
        yield eng
    finally:
        eng.dispose()


def _without_memos(engine: Engine, scope: Scope) -> metrics.MetricSet:
    INTERVALS.clear()
    rollups.WINDOWS.clear()
    return metrics.compute(engine, scope, tasks_per_day=100, refresh=False)


def test_memo_is_bounded_and_computes_each_key_once() -> None:
    memo: Memo[int] = Memo(2)
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(calls)

    assert memo.get("a", lambda: compute("a")) == 1
    assert memo.get("a", lambda: compute("a")) == 1
    assert memo.get("b", lambda: compute("b")) == 2
    assert memo.get("a", lambda: compute("a")) == 1  # "a" is now the most recently used
    assert memo.get("c", lambda: compute("c")) == 3  # evicts "b", the least recently used
    assert len(memo) == 2
    assert memo.get("b", lambda: compute("b")) == 4
    assert calls == ["a", "b", "c", "b"]
    assert (memo.hits, memo.misses) == (2, 4)
    with pytest.raises(ValueError):
        Memo(0)


def test_digest_tells_apart_values_order_grouping_and_parameters() -> None:
    base = digest("time_saved", ([1.0, 2.0], [3.0]), (0.95, 2000))
    assert base == digest("time_saved", ((1, 2), [3]), (0.95, 2000))  # the same numbers
    assert base != digest("time_saved", ([2.0, 1.0], [3.0]), (0.95, 2000))  # order
    assert base != digest("time_saved", ([1.0], [2.0, 3.0]), (0.95, 2000))  # grouping
    assert base != digest("time_saved", ([1.0, 2.0], [3.0000001]), (0.95, 2000))  # a value
    assert base != digest("time_saved", ([1.0, 2.0], [3.0]), (0.9, 2000))  # a parameter
    assert base != digest("bootstrap_mean", ([1.0, 2.0], [3.0]), (0.95, 2000))  # the computation


def test_a_new_task_gives_new_intervals_not_the_remembered_ones(engine: Engine, world: World) -> None:
    scope = Scope(UC, START, END)
    first = metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    assert INTERVALS.misses >= 2 and len(INTERVALS) >= 2
    again = metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    assert INTERVALS.hits >= 2  # the second view took them from the memo ...
    assert again.values == first.values  # ... and they are the same
    treatment = next(t for t in world.tasks if t["group"] == "treatment" and t["run_ids"])
    with engine.begin() as conn:
        conn.execute(
            insert(tasks),
            {**treatment, "id": "t-new", "duration_s": 5.0, "finished_at": START + timedelta(days=3)},
        )
    changed = metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    assert changed.values["time_saved_pct"] != first.values["time_saved_pct"]
    assert changed.values["cost_per_task_usd"] != first.values["cost_per_task_usd"]
    assert changed.values == _without_memos(engine, scope).values


def test_windows_follow_the_fresh_tail_updates_and_rebuilds(engine: Engine) -> None:
    scope = Scope(UC, START, END)
    rollups.update(engine, now=END + timedelta(days=30))
    before = metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    assert len(rollups.WINDOWS) == 1
    hits = rollups.WINDOWS.hits
    metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    assert rollups.WINDOWS.hits == hits + 1

    # back-dated runs (an import) are invisible until a rebuild; the rebuild ends at the same
    # watermark as before, yet the window must not be the remembered one
    rng = random.Random(3)
    backdated = [
        run_row(rng, 900_000 + i, START + timedelta(days=2, hours=i), use_case_id=UC) for i in range(40)
    ]
    insert_runs(engine, backdated)
    assert metrics.compute(engine, scope, tasks_per_day=100, refresh=False).values == before.values
    rollups.rebuild(engine, now=END + timedelta(days=30))
    rebuilt = metrics.compute(engine, scope, tasks_per_day=100, refresh=False)
    assert rebuilt.values["cost_per_run_usd"].n == before.values["cost_per_run_usd"].n + 40
    assert rebuilt.values == _without_memos(engine, scope).values


def test_a_window_ending_now_adds_the_fresh_tail_to_the_remembered_rollups(engine: Engine) -> None:
    now = datetime.now(UTC)
    rollups.update(engine, now=now)
    first = rollups.window(engine, UC, None, now)
    rng = random.Random(4)
    fresh = [run_row(rng, 800_000 + i, now - timedelta(seconds=30 + i), use_case_id=UC) for i in range(7)]
    insert_runs(engine, fresh)
    later = datetime.now(UTC)
    second = rollups.window(engine, UC, None, later)
    assert rollups.WINDOWS.hits >= 1
    assert sum(c.runs for c in second.totals.values()) == sum(c.runs for c in first.totals.values()) + 7
    rollups.WINDOWS.clear()
    third = rollups.window(engine, UC, None, later)  # nothing remembered
    assert third.totals == second.totals and third.activity == second.activity
    # the remembered entry is copied, not handed out: adding the tail to one answer did not
    # add it to the entry (the next answer would count the tail twice)
    fourth = rollups.window(engine, UC, None, later)
    assert fourth.totals == third.totals and fourth.activity == third.activity


def test_refresh_rolls_up_only_when_the_rollups_trail(engine: Engine) -> None:
    now = datetime.now(UTC)
    assert rollups.catch_up(engine, now=now) > 0  # nothing rolled up yet: the initial pass
    with engine.connect() as conn:
        mark = conn.execute(select(run_rollup_state.c.watermark)).scalar()
    assert rollups.catch_up(engine, now=now + timedelta(seconds=60)) == 0
    with engine.connect() as conn:
        assert conn.execute(select(run_rollup_state.c.watermark)).scalar() == mark  # nothing written
    rng = random.Random(5)
    late = now + timedelta(seconds=rollups.REFRESH_LAG_S + 60)
    insert_runs(
        engine, [run_row(rng, 700_000, late - timedelta(seconds=rollups.GRACE_S + 30), use_case_id=UC)]
    )
    assert rollups.catch_up(engine, now=late + timedelta(seconds=rollups.GRACE_S)) == 1
