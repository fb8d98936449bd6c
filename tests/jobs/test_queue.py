"""The job queue on SQLite and PostgreSQL: retries with backoff, leases of dead workers, one claim per job, schedules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from aerodrome.config import JobsConfig, PlatformConfig
from aerodrome.errors import Conflict, NotFound
from aerodrome.hookspecs import Registry
from aerodrome.jobs.context import Job, JobContext
from aerodrome.jobs.queue import JobQueue, get_job, list_jobs
from aerodrome.jobs.registry import JOBS_GROUP, JobKind, job_registry
from aerodrome.jobs.worker import Worker
from aerodrome.storage.tables import jobs


class Flaky:
    """Fails its first ``failures`` attempts, then succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RuntimeError("upstream went away")
        self.calls: list[int] = []

    def __call__(self, ctx: JobContext, job: Job) -> dict[str, Any]:
        self.calls.append(job.attempt)
        job.progress(1, 2, "half way")
        if len(self.calls) <= self.failures:
            raise self.error
        return {"done": 2, "attempt": job.attempt}


def _worker(engine: Engine, kinds: dict[str, JobKind], *, name: str, **jobs_cfg: Any) -> Worker:
    config = PlatformConfig()
    ctx = JobContext(engine=engine, config=config, knowledge=lambda: pytest.fail("no knowledge here"))
    settings = JobsConfig(**{"backoff_s": 0, "rollup_interval_s": 0, **jobs_cfg})
    return Worker(JobQueue(engine), Registry(JOBS_GROUP, kinds), ctx, settings, name=name)


def test_a_failed_attempt_is_retried_after_its_backoff_and_then_succeeds(engine: Engine) -> None:
    flaky = Flaky(failures=1)
    w = _worker(engine, {"flaky": JobKind("flaky", flaky)}, name="w1", backoff_s=3600)
    job_id = JobQueue(engine).enqueue("flaky", "t", created_by="alice", max_attempts=3)
    assert w.run_once()
    job = get_job(engine, job_id)
    assert job["status"] == "queued" and job["attempts"] == 1
    assert job["error"] == "RuntimeError: upstream went away"
    assert "attempt 1 of 3 failed; retrying in 3600 s" in job["message"]
    assert job["available_at"] > datetime.now(UTC) + timedelta(minutes=59)
    assert not w.run_once(), "the retry waits for its backoff"
    with engine.begin() as conn:  # the hour passes
        conn.execute(update(jobs).values(available_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert w.run_once()
    job = get_job(engine, job_id)
    assert (
        job["status"] == "succeeded" and job["attempts"] == 2 and job["result"] == {"done": 2, "attempt": 2}
    )
    assert flaky.calls == [1, 2]


def test_a_job_fails_for_good_after_its_last_attempt_with_the_error_kept(engine: Engine) -> None:
    flaky = Flaky(failures=10, error=ValueError("bad row 17"))
    w = _worker(engine, {"flaky": JobKind("flaky", flaky)}, name="w1")
    job_id = JobQueue(engine).enqueue("flaky", "t", created_by="alice", max_attempts=2)
    assert w.run_once() and w.run_once()
    assert not w.run_once()
    job = get_job(engine, job_id)
    assert job["status"] == "failed" and job["attempts"] == 2 and job["finished_at"] is not None
    assert job["error"] == job["message"] == "ValueError: bad row 17"
    assert [j["id"] for j in list_jobs(engine, status="failed")] == [job_id]


def test_a_user_error_fails_at_once_without_retries(engine: Engine) -> None:
    flaky = Flaky(failures=10, error=NotFound("no collection 'hr'", code="collection_not_found"))
    w = _worker(engine, {"flaky": JobKind("flaky", flaky)}, name="w1")
    job_id = JobQueue(engine).enqueue("flaky", "t", created_by="alice", max_attempts=5)
    assert w.run_once()
    job = get_job(engine, job_id)
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"] == "collection_not_found: no collection 'hr'"


def test_a_dead_workers_job_runs_again_on_another_worker(engine: Engine) -> None:
    flaky = Flaky(failures=0)
    queue = JobQueue(engine)
    job_id = queue.enqueue("flaky", "t", created_by="alice", max_attempts=3)
    dead = queue.claim("dead-worker", ["flaky"], lease_s=0.01)  # claims, then never renews or finishes
    assert dead is not None and get_job(engine, job_id)["status"] == "running"
    with engine.begin() as conn:
        conn.execute(update(jobs).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    alive = _worker(engine, {"flaky": JobKind("flaky", flaky)}, name="alive")
    assert alive.run_once()
    job = get_job(engine, job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert "lease expired" in job["error"]
    queue.succeed(job_id, "dead-worker", {"done": 99})  # the dead worker wakes up late: changes nothing
    assert get_job(engine, job_id)["result"] == {"done": 2, "attempt": 2}


def test_an_expired_lease_on_the_last_attempt_fails_the_job(engine: Engine) -> None:
    queue = JobQueue(engine)
    job_id = queue.enqueue("flaky", "t", created_by="alice", max_attempts=1)
    assert queue.claim("dead-worker", ["flaky"], lease_s=0.01) is not None
    with engine.begin() as conn:
        conn.execute(update(jobs).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert queue.reclaim_expired() == 1
    job = get_job(engine, job_id)
    assert job["status"] == "failed" and "worker stopped" in job["message"]


def test_many_workers_claim_each_job_exactly_once(engine: Engine) -> None:
    queue = JobQueue(engine)
    ids = [queue.enqueue("k", f"t{i}", created_by="a", max_attempts=1) for i in range(40)]
    claimed: list[str] = []
    lock = threading.Lock()

    def drain(name: str) -> None:
        q = JobQueue(engine)
        while (job := q.claim(name, ["k"], lease_s=60)) is not None:
            with lock:
                claimed.append(job.id)
            q.succeed(job.id, name, {})

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(ids)
    with engine.connect() as conn:
        assert set(conn.execute(select(jobs.c.status)).scalars()) == {"succeeded"}


def test_one_job_per_target_at_a_time(engine: Engine) -> None:
    queue = JobQueue(engine)
    first = queue.enqueue("ingest", "hr", created_by="a", max_attempts=1)
    with pytest.raises(Conflict) as exc:
        queue.enqueue("ingest", "hr", created_by="b", max_attempts=1)
    assert exc.value.code == "job_running" and first in exc.value.message
    queue.enqueue("ingest", "finance", created_by="a", max_attempts=1)


def test_a_periodic_job_is_started_once_per_interval_among_many_workers(engine: Engine) -> None:
    ran: list[str] = []
    kind = JobKind("tick", lambda ctx, job: ran.append(job.id) or {}, interval_s=lambda cfg: 3600, target="x")
    workers = [_worker(engine, {"tick": kind}, name=f"w{i}") for i in range(3)]
    started = [w.schedule_due() for w in workers] + [w.schedule_due() for w in workers]
    assert sum(len(s) for s in started) == 1
    assert [w.run_once() for w in workers].count(True) == 1 and len(ran) == 1
    with engine.connect() as conn:
        assert conn.execute(select(jobs.c.created_by)).scalars().all() == ["system:scheduler"]


def test_the_built_in_kinds_are_registered_by_name() -> None:
    assert {"ingest", "rollup", "retention"} <= set(job_registry().names())
