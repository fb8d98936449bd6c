"""The dashboards' figures on SQLite and PostgreSQL: windows, scopes, filters, sums."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from aerodrome.identity.principal import Principal
from aerodrome.monitoring import daily_rollups
from aerodrome.monitoring.dashboard import DashboardFilter, figures, usage_by_deployment
from aerodrome.storage.tables import feedback, runs, tasks

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ADMIN = Principal(name="admin@example.com", department_id="platform", roles=frozenset({"platform_admin"}))
HR_USER = Principal(name="ann@example.com", department_id="hr", roles=frozenset({"user"}))


def _run(days_ago: float, who: str, dept: str, **kw: Any) -> dict[str, Any]:
    row = {
        "id": uuid.uuid4().hex,
        "request_id": "r",
        "created_at": NOW - timedelta(days=days_ago),
        "endpoint": "usecase",
        "principal": who,
        "department_id": dept,
        "alias": "chat-small",
        "deployment": "local-extractive",
        "use_case_id": "hr-policy",
        "status": "ok",
        "http_status": 200,
        "cost_usd": 0.01,
        "latency_ms": 100.0,
        "prompt_tokens": 10,
        "completion_tokens": 5,
    }
    row.update(kw)
    return row


def _seed(engine: Engine) -> None:
    rows = [
        _run(0.1, "ann@example.com", "hr"),
        _run(0.2, "ann@example.com", "hr", latency_ms=900.0),
        _run(1.1, "bob@example.com", "hr", status="error", http_status=502, cost_usd=0.0),
        _run(2.1, "cy@example.com", "finance", use_case_id=None, alias="chat-large", cost_usd=0.5),
        _run(40, "ann@example.com", "hr"),  # outside 30 days
    ]
    with engine.begin() as conn:
        conn.execute(runs.insert(), rows)
        conn.execute(
            feedback.insert(),
            [
                {
                    "id": uuid.uuid4().hex,
                    "run_id": rows[i]["id"],
                    "usecase_id": "hr-policy",
                    "department_id": "hr",
                    "author": "ann@example.com",
                    "author_role": "caller",
                    "rating": rating,
                    "score": score,
                    "flags": flags,
                    "created_at": NOW - timedelta(hours=1),
                }
                for i, rating, score, flags in ((0, "up", 1.0, []), (1, "down", 0.0, ["wrong"]))
            ],
        )
        conn.execute(
            tasks.insert(),
            [
                {
                    "id": uuid.uuid4().hex,
                    "usecase_id": "hr-policy",
                    "department_id": "hr",
                    "user_ref": "ann@example.com",
                    "group": group,
                    "finished_at": NOW - timedelta(days=1),
                    "duration_s": duration,
                    "run_ids": [],
                    "source": "api",
                    "created_by": "test",
                    "created_at": NOW - timedelta(days=1),
                }
                for group, duration in (("baseline", 600.0), ("baseline", 600.0), ("treatment", 450.0))
            ],
        )


def test_figures_of_every_department(engine: Engine) -> None:
    _seed(engine)
    d = figures(engine, ADMIN, "all", DashboardFilter(days=30), now=NOW)
    t = d["totals"]
    assert (t["runs"], t["users"], t["errors"]) == (4, 3, 1)
    assert t["cost_usd"] == pytest.approx(0.52)
    assert t["error_rate"] == pytest.approx(0.25)
    assert d["adoption"]["departments"] == ["finance", "hr"]
    assert sum(d["adoption"]["active_users"]["hr"]) == 2  # ann on one day, bob on another
    assert sum(d["operations"]["runs"]) == 4 and sum(d["operations"]["errors"]) == 1
    by_model = {r["name"]: r for r in d["cost"]["model"]}
    assert by_model["chat-large"]["cost_usd"] == pytest.approx(0.5) and by_model["chat-small"]["runs"] == 3
    assert d["cost"]["model"][0]["name"] == "chat-large"  # most expensive first
    assert {r["name"] for r in d["cost"]["usecase"]} == {"hr-policy", "—"}
    q = d["quality"]
    assert (q["rated"], q["useful"], q["useful_rate"], q["flags"]) == (2, 1, 0.5, {"wrong": 1})
    e = d["efficiency"]
    assert e["time_saved_pct"] == pytest.approx(0.25) and e["tasks"] == {"baseline": 2, "treatment": 1}
    assert t["latency_p95_ms"] == 900.0  # the error's latency is not an answer's
    assert figures(engine, ADMIN, "all", DashboardFilter(days=90), now=NOW)["totals"]["runs"] == 5


def test_scopes_and_filters_narrow_the_figures(engine: Engine) -> None:
    _seed(engine)
    dept = figures(engine, HR_USER, "department", DashboardFilter(days=30), now=NOW)
    assert dept["totals"]["runs"] == 3 and dept["adoption"]["departments"] == ["hr"]
    own = figures(engine, HR_USER, "own", DashboardFilter(days=30), now=NOW)
    assert (own["totals"]["runs"], own["totals"]["users"]) == (2, 1)
    assert own["totals"]["latency_p95_ms"] == 900.0  # nearest rank of 100 and 900 ms
    filtered = figures(engine, ADMIN, "all", DashboardFilter(days=30, department="finance"), now=NOW)
    assert filtered["totals"]["runs"] == 1 and filtered["quality"]["rated"] == 0
    by_usecase = figures(engine, ADMIN, "all", DashboardFilter(days=30, usecase_id="hr-policy"), now=NOW)
    assert by_usecase["totals"]["runs"] == 3
    empty = figures(engine, ADMIN, "all", DashboardFilter(days=1, usecase_id="nothing"), now=NOW)
    assert empty["totals"]["runs"] == 0 and empty["totals"]["latency_p95_ms"] is None
    usage = usage_by_deployment(engine, HR_USER, "department", now=NOW)
    assert usage["local-extractive"]["runs"] == 3 and usage["local-extractive"]["tokens"] == 45


@pytest.mark.parametrize("rolled_up", [False, True])
def test_evaluation_and_red_team_runs_are_not_usage(engine: Engine, rolled_up: bool) -> None:
    """The platform testing itself (eval suites, red teams) stays out of adoption, runs, errors and
    latency; the models page still counts what each deployment served."""
    _seed(engine)
    synthetic = [
        _run(0.3, "eval:admin@example.com", "hr", endpoint="eval", latency_ms=5000.0),
        _run(0.3, "redteam:admin@example.com", "hr", endpoint="redteam", status="rejected", http_status=400),
        _run(1.5, "redteam:admin@example.com", "hr", endpoint="redteam", status="rejected", http_status=400),
    ]
    with engine.begin() as conn:
        conn.execute(runs.insert(), synthetic)
    if rolled_up:
        assert daily_rollups.update(engine, now=NOW + timedelta(days=1)) > 0
    d = figures(engine, ADMIN, "all", DashboardFilter(days=30), now=NOW)
    t = d["totals"]
    assert (t["runs"], t["users"], t["errors"]) == (4, 3, 1), "the same figures as without them"
    assert t["latency_p95_ms"] == 900.0 and sum(d["adoption"]["active_users"]["hr"]) == 2
    own = figures(
        engine,
        Principal(name="eval:admin@example.com", department_id="hr", roles=frozenset({"user"})),
        "own",
        DashboardFilter(),
        now=NOW,
    )
    assert own["totals"]["runs"] == 0
    usage = usage_by_deployment(engine, ADMIN, "all", now=NOW)
    assert usage["local-extractive"]["runs"] == 4 + 3, "a deployment served them all"
