"""Migration 0015 on SQLite and PostgreSQL: run content moves from ``runs`` to ``run_contents`` and back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, MetaData, Table, func, inspect, select

from aerodrome.monitoring.runs import get_run
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import run_contents, runs

RUNS = 10_001  # more than two of the migration's batches of 5,000 ids


def _runs_0013(engine: Engine) -> Table:
    """``runs`` as it stands at 0013, content included (reflected)."""
    return Table("runs", MetaData(), autoload_with=engine)


@pytest.fixture
def at_0013(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate.upgrade(eng, "0013")
    yield eng
    eng.dispose()


def _content(i: int) -> tuple[object, object]:
    if i % 5 == 0:
        return None, None  # content logging off
    if i % 5 == 1:
        return {"messages": 1, "roles": ["user"], "tools": 0}, {"chars": 12}  # "metadata"
    return {"messages": [{"role": "user", "content": f"question {i}"}]}, (
        {"text": f"answer {i}"} if i % 5 != 4 else None
    )


def test_upgrade_moves_content_and_downgrade_moves_it_back(at_0013: Engine) -> None:
    now = datetime.now(UTC)
    rows = []
    for i in range(RUNS):
        input_, output = _content(i)
        rows.append(
            {
                "id": f"{i:032x}",
                "request_id": "r",
                "created_at": now.replace(tzinfo=None),
                "endpoint": "chat",
                "stream": False,
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "tokens_estimated": False,
                "cost_usd": 0.0,
                "attempts": 1,
                "cache_hit": False,
                "principal": "someone",
                "status": "ok",
                "http_status": 200,
                "latency_ms": float(i),
                "input": input_,
                "output": output,
            }
        )
    with at_0013.begin() as conn:
        conn.execute(_runs_0013(at_0013).insert(), rows)
    with_content = {r["id"] for r in rows if r["input"] is not None or r["output"] is not None}

    migrate.upgrade(at_0013)
    assert {"input", "output"}.isdisjoint(c["name"] for c in inspect(at_0013).get_columns("runs"))
    with at_0013.connect() as conn:
        assert conn.execute(select(func.count()).select_from(runs)).scalar_one() == RUNS
        moved = {r["run_id"]: r for r in conn.execute(select(run_contents)).mappings()}
    assert set(moved) == with_content, "every run with content, and only those, has a content row"
    for i in (1, 2, 4, 9_997, RUNS - 2):
        input_, output = _content(i)
        run_id = f"{i:032x}"
        assert (moved[run_id]["input"], moved[run_id]["output"]) == (input_, output)
        run = get_run(at_0013, run_id)
        assert run is not None and run["input"] == input_ and run["output"] == output
        assert run["latency_ms"] == float(i)
    empty = get_run(at_0013, f"{5:032x}")
    assert empty is not None and empty["input"] is None and empty["output"] is None

    migrate.downgrade(at_0013, "0013")
    assert "run_contents" not in inspect(at_0013).get_table_names()
    with at_0013.connect() as conn:
        back = {r["id"]: r for r in conn.execute(select(_runs_0013(at_0013))).mappings()}
    assert len(back) == RUNS
    for i in (0, 1, 2, 4, 5_003, RUNS - 1):
        input_, output = _content(i)
        assert (back[f"{i:032x}"]["input"], back[f"{i:032x}"]["output"]) == (input_, output), i
