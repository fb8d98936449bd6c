"""A run asked for right after it finished: found before the batched writer stores it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from aerodrome.monitoring.run_log import RunWriter
from aerodrome.monitoring.runs import get_run
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from tests.harness import Gateway
from tests.review.helpers import chat


def _block_writer(writer: RunWriter, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold the writer thread before each insert until the returned event is set."""
    release = threading.Event()
    insert = writer._insert

    def slow_insert(batch: list[dict[str, Any]]) -> None:
        release.wait(10)
        insert(batch)

    monkeypatch.setattr(writer, "_insert", slow_insert)
    return release


def test_get_run_and_feedback_before_the_record_is_written(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = gateway.make_key("hr", "user", name="carl")
    other = gateway.make_key("hr", "user", name="dora")
    release = _block_writer(gateway.runtime.writer, monkeypatch)
    try:
        run_id = chat(gateway, key)
        assert get_run(gateway.runtime.engine, run_id) is None  # not in the table yet
        with gateway.client(key) as c:
            r = c.get(f"/v1/runs/{run_id}")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "ok" and r.json()["model"] == "chat-small"
            r = c.post("/v1/feedback", json={"run_id": run_id, "rating": "up"})
            assert r.status_code == 201, r.text
        with gateway.client(other) as c:  # still somebody else's run, cached or not
            assert c.get(f"/v1/runs/{run_id}").status_code == 403
    finally:
        release.set()
    gateway.flush()
    assert gateway.runtime.writer.recent(run_id) is None  # written: the table answers now
    assert get_run(gateway.runtime.engine, run_id) is not None
    with gateway.client(key) as c:
        assert c.get(f"/v1/runs/{run_id}").json()["id"] == run_id


def test_writer_keeps_unwritten_records_bounded(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    migrate.upgrade(engine)
    writer = RunWriter(engine, recent_max=3)
    gate = threading.Event()
    insert = writer._insert

    def slow_insert(batch: list[dict[str, Any]]) -> None:
        gate.wait(10)
        insert(batch)

    writer._insert = slow_insert  # type: ignore[method-assign]
    try:
        for i in range(5):
            writer.submit({"id": f"r{i}", "bogus": True})
        assert writer.recent("r0") is None and writer.recent("r1") is None  # past the bound
        assert [writer.recent(f"r{i}") is not None for i in range(2, 5)] == [True, True, True]
    finally:
        gate.set()
        assert writer.wait_idle(10)
        writer.close()
        engine.dispose()
    assert all(writer.recent(f"r{i}") is None for i in range(5))  # dropped once handled
