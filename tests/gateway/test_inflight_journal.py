"""The in-flight journal of scaled mode on a real Redis: journals stand for replicas.

A dead replica's journaled calls are taken by exactly one sweeper (two sweep at once) and
recorded as interrupted, once, never over a record the dead replica already wrote; their budget
reservations are released; a live replica's journal is left alone; a call whose record is
committed leaves no entry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, select

from aerodrome.config import Budget, RedisConfig
from aerodrome.gateway.inflight import InflightJournal
from aerodrome.limits.budget import BudgetScope
from aerodrome.limits.redis_backend import RedisLimits
from aerodrome.monitoring.metrics import Metrics
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from aerodrome.storage.redis_link import RedisLink
from aerodrome.storage.tables import runs
from tests.integration.services import SHARED_REDIS, delete_prefix, shared_redis_available, unique_prefix

pytestmark = pytest.mark.skipif(not shared_redis_available(), reason="Redis is not running at 127.0.0.1:6379")


@pytest.fixture
def prefix() -> Iterator[str]:
    name = unique_prefix()
    yield name
    delete_prefix(SHARED_REDIS, name)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


class Replica:
    """One replica's journal, run writer and Redis limits."""

    def __init__(self, config: RedisConfig, engine: Engine, name: str) -> None:
        self.link = RedisLink(config)
        self.writer = RunWriter(engine, flush_interval_s=0.02)
        self.metrics = Metrics()
        self.limits = RedisLimits(self.link, spent_of=lambda kind, ident, budget: 0.0)
        self.journal = InflightJournal(
            self.link, writer=self.writer, metrics=self.metrics, release=self.limits.release, replica_id=name
        )
        self.writer.on_committed = self.journal.forget

    async def start(self, *, sweeping: bool = True) -> None:
        await self.limits.start()
        if sweeping:
            await self.journal.start()
        else:  # a replica that beats once and then dies: no loops
            self.journal._loop = asyncio.get_running_loop()
            await self.journal.beat()

    async def kill(self) -> None:
        """Stop without the graceful close: the journal stays in Redis, as after SIGKILL."""
        self.journal._closing = True
        for task in self.journal._tasks:
            task.cancel()
        await self.limits.close(timeout_s=1)
        self.writer.close()
        await self.link.close()

    async def close(self) -> None:
        self.writer.close()
        await self.journal.close()
        await self.limits.close(timeout_s=1)
        await self.link.close()


def entry(run_id: str, *, held: list[str] | None = None, department: str = "hr") -> dict[str, Any]:
    return {
        "id": run_id,
        "request_id": "req-" + run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "endpoint": "chat",
        "key_id": "k1",
        "user_id": None,
        "principal": "alice",
        "department_id": department,
        "alias": "chat-small",
        "use_case_id": None,
        "spec_version": None,
        "stream": True,
        "held": held or [],
    }


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(runs))]


def journal_len(prefix: str, replica: str) -> int:
    with redis.Redis.from_url(SHARED_REDIS) as r:
        return int(r.hlen("{" + prefix + "}:inflight:" + replica))


def _config(prefix: str) -> RedisConfig:
    return RedisConfig(url=SHARED_REDIS, key_prefix=prefix, heartbeat_ttl_s=1, orphan_sweep_s=60)


def test_two_sweepers_one_takes_the_dead_replicas_calls_once(prefix: str, engine: Engine) -> None:
    async def scenario() -> None:
        config = _config(prefix)
        dead, a, b = (Replica(config, engine, n) for n in ("dead", "a", "b"))
        await dead.start(sweeping=False)
        for r in (a, b):
            await r.start(sweeping=False)
        # one call already recorded by the dead replica, which died before the removal of its entry
        # reached Redis; two calls still in flight
        dead.writer.on_committed = None
        written = entry("r-written")
        dead.writer.submit(
            {
                **{k: v for k, v in entry("r-written").items() if k != "held"},
                **{"created_at": datetime.fromisoformat(written["created_at"])},
                "status": "ok",
                "http_status": 200,
                "latency_ms": 12.0,
                "stream": True,
            }
        )
        assert dead.writer.wait_idle()
        for run_id in ("r-written", "r-1", "r-2"):
            dead.journal.add(entry(run_id))
        await dead.journal._flush()
        assert journal_len(prefix, "dead") == 3
        await dead.kill()
        # a live replica beating is never taken; the dead one after ttl and half as long again
        takes: list[int] = []
        deadline = time.monotonic() + 10
        while sum(takes) == 0 and time.monotonic() < deadline:
            await asyncio.gather(a.journal.beat(), b.journal.beat())
            takes = list(await asyncio.gather(a.journal.sweep(), b.journal.sweep()))
            await asyncio.sleep(0.1)
        assert sorted(takes) == [0, 3]  # one sweeper got all three, the other none
        for r in (a, b):
            assert r.writer.wait_idle()
            assert r.writer.failed == 0  # the record already written is skipped, not an error
            assert r.metrics.runs_interrupted._value.get() == r.journal.recorded
        assert journal_len(prefix, "dead") == 0
        # nothing left: sweeping again records nothing
        assert await a.journal.sweep() == 0 and await b.journal.sweep() == 0
        for r in (a, b):
            await r.close()

    asyncio.run(scenario())
    by_id = {r["id"]: r for r in rows(engine)}
    assert sorted(by_id) == ["r-1", "r-2", "r-written"]  # once each
    assert by_id["r-written"]["status"] == "ok"  # the dead replica's own record is kept
    for run_id in ("r-1", "r-2"):
        rec = by_id[run_id]
        assert (rec["status"], rec["error_code"], rec["http_status"]) == ("interrupted", "replica_lost", 502)
        assert (rec["principal"], rec["department_id"], rec["alias"]) == ("alice", "hr", "chat-small")
        assert rec["cost_usd"] == 0 and rec["stream"] is True
        assert rec["meta"]["interrupted"]["replica"] == "dead"


def test_a_live_replica_is_not_swept_and_a_committed_call_leaves_no_entry(
    prefix: str, engine: Engine
) -> None:
    async def scenario() -> None:
        config = _config(prefix)
        live, sweeper = Replica(config, engine, "live"), Replica(config, engine, "sweeper")
        await live.start()  # beats every ttl/3 by itself
        await sweeper.start(sweeping=False)
        live.journal.add(entry("r-long"))  # a long call, still in flight
        live.journal.add(entry("r-done"))
        await asyncio.sleep(0.1)
        assert journal_len(prefix, "live") == 2
        live.journal.forget(["r-done"])  # its record committed
        await asyncio.sleep(0.1)
        assert journal_len(prefix, "live") == 1
        for _ in range(30):  # 3 s: twice the ttl and more
            await sweeper.journal.beat()
            assert await sweeper.journal.sweep() == 0
            await asyncio.sleep(0.1)
        assert journal_len(prefix, "live") == 1
        await live.close()  # a graceful stop drops its journal: its writer recorded everything
        assert journal_len(prefix, "live") == 0
        await sweeper.close()

    asyncio.run(scenario())
    assert rows(engine) == []


def test_a_dead_replicas_reservation_is_released_by_the_sweeper(prefix: str, engine: Engine) -> None:
    async def scenario() -> None:
        config = _config(prefix)
        dead, survivor = Replica(config, engine, "dead"), Replica(config, engine, "survivor")
        await dead.start(sweeping=False)
        await survivor.start(sweeping=False)
        scope = BudgetScope("key", "k1", Budget(usd=1.0, period="day"))
        admission = await dead.limits.admit([], [scope], 0.25)
        held = RedisLimits.held_of(admission)
        assert len(held) == 3
        dead.journal.add(entry("r-held", held=held))
        await dead.journal._flush()
        await dead.kill()
        (account,) = await survivor.limits.snapshot()
        assert account["reserved"] == 0.25
        deadline = time.monotonic() + 10
        while survivor.journal.recorded == 0 and time.monotonic() < deadline:
            await survivor.journal.beat()
            await survivor.journal.sweep()
            await asyncio.sleep(0.1)
        assert survivor.journal.recorded == 1
        for _ in range(50):
            (account,) = await survivor.limits.snapshot()
            if account["reserved"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (account["reserved"], account["spent"]) == (0, 0)
        await survivor.close()

    asyncio.run(scenario())
