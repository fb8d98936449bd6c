"""The dashboards read whole days from the daily rollups: the same figures as from the raw runs,
on SQLite and PostgreSQL, whatever the window, scope, filter or position of the watermark."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select

from aerodrome.identity.principal import Principal
from aerodrome.monitoring import daily_rollups
from aerodrome.monitoring.dashboard import WINDOWS, DashboardFilter, figures
from aerodrome.storage.tables import run_daily_figures, runs

NOW = datetime(2026, 12, 3, 14, 37, 12, tzinfo=UTC)
ADMIN = Principal(name="admin@example.com", department_id="platform", roles=frozenset({"platform_admin"}))
HR = Principal(name="u1@example.com", department_id="hr", roles=frozenset({"department_admin"}))


def _runs(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    edges = daily_rollups.LOWS[1:120]
    out = []
    for i in range(n):
        # mostly spread over 100 days, some in the last minutes (after the watermark)
        ago = rng.uniform(0, 100 * 86400) if i % 10 else rng.uniform(0, 600)
        status = rng.choice(["ok"] * 6 + ["fallback", "error", "rejected", "output_invalid"])
        latency = rng.choice(edges) if i % 7 == 0 else round(rng.lognormvariate(6.5, 0.8), 3)
        out.append(
            {
                "id": uuid.uuid4().hex,
                "request_id": "r",
                "created_at": NOW - timedelta(seconds=ago),
                "endpoint": rng.choice(["usecase", "chat", "eval", "redteam"]),
                "principal": f"u{rng.randrange(25)}@example.com",
                "department_id": rng.choice(["hr", "hr", "finance", None]),
                "alias": rng.choice(["chat-small", "chat-large", None]),
                "deployment": rng.choice(["local-extractive", "vendor", None]),
                "use_case_id": rng.choice(["hr-policy", "letters", None]),
                "status": status,
                "http_status": 200,
                "cost_usd": round(rng.uniform(0, 0.05), 6),
                "latency_ms": latency,
                "prompt_tokens": rng.randrange(500),
                "completion_tokens": rng.randrange(300),
            }
        )
    return out


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-9 relative (sums of floats in another order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9), path
    else:
        assert a == b, path


VIEWS = [
    (ADMIN, "all", {}),
    (ADMIN, "all", {"department": "hr"}),
    (ADMIN, "all", {"usecase_id": "letters"}),
    (ADMIN, "all", {"department": "finance", "usecase_id": "hr-policy"}),
    (HR, "department", {}),
    (HR, "department", {"usecase_id": "hr-policy"}),
]


def _compare(engine: Engine, now: datetime) -> None:
    for principal, scope, extra in VIEWS:
        for days in WINDOWS:
            flt = DashboardFilter(days=days, **extra)
            raw = figures(engine, principal, scope, flt, now=now, use_rollups=False)
            rolled = figures(engine, principal, scope, flt, now=now)
            _same(rolled, raw, f"{scope} {flt}")


def test_rollup_figures_equal_raw_figures(engine: Engine) -> None:
    rows = _runs(3000)
    usage = sum(1 for r in rows if r["endpoint"] not in daily_rollups.NOT_USAGE)
    assert 0 < usage < 3000  # evaluation and red-team runs among them, left out
    with engine.begin() as conn:
        conn.execute(runs.insert(), rows)
    _compare(engine, NOW)  # nothing rolled up yet: every run read raw
    added = daily_rollups.update(engine, now=NOW - timedelta(days=40, hours=5))
    assert 0 < added < 3000
    _compare(engine, NOW)  # a watermark in the middle of a day, 40 days back
    assert daily_rollups.update(engine, now=NOW, batch_size=97) > 0  # many batches
    assert daily_rollups.update(engine, now=NOW) == 0  # idempotent
    with engine.connect() as conn:
        rolled = conn.execute(select(func.sum(run_daily_figures.c.runs))).scalar()
        fresh = conn.execute(
            select(func.count()).where(
                runs.c.created_at >= daily_rollups.watermark(conn), daily_rollups.usage_only()
            )
        ).scalar()
    assert rolled + fresh == usage
    _compare(engine, NOW)
    _compare(engine, NOW - timedelta(days=3, hours=7))  # a window ending before the watermark
    _compare(engine, NOW.replace(hour=0, minute=0, second=0))  # windows on day boundaries


def test_whole_days_come_from_the_rollup(engine: Engine) -> None:
    """Once rolled up, a whole day's runs are not read again: only the p95 still reads the runs
    of one latency bucket. Deleting the raw runs of whole days leaves the counts as they were."""
    with engine.begin() as conn:
        conn.execute(runs.insert(), _runs(800, seed=5))
    daily_rollups.update(engine, now=NOW)
    before = figures(engine, ADMIN, "all", DashboardFilter(days=90), now=NOW)
    with engine.begin() as conn:
        first_whole_day = (NOW - timedelta(days=89)).replace(hour=0, minute=0, second=0)
        whole_days = (runs.c.created_at >= first_whole_day, runs.c.created_at < NOW - timedelta(days=2))
        assert conn.execute(delete(runs).where(*whole_days)).rowcount > 500
    after = figures(engine, ADMIN, "all", DashboardFilter(days=90), now=NOW)
    for key in ("runs", "users", "errors"):
        assert after["totals"][key] == before["totals"][key]
    assert after["adoption"] == before["adoption"] and after["operations"] == before["operations"]


def test_rebuild_rolls_everything_up_again(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(runs.insert(), _runs(400, seed=9))
    daily_rollups.update(engine, now=NOW)
    first = figures(engine, ADMIN, "all", DashboardFilter(days=90), now=NOW)
    daily_rollups.rebuild(engine, now=NOW)
    _same(figures(engine, ADMIN, "all", DashboardFilter(days=90), now=NOW), first)
