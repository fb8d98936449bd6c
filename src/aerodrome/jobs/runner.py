"""An in-process job runner: work runs in a worker thread, progress is kept in the jobs table.

Each job reports ``progress(done, total, message)``; the runner writes it at most
every ``write_interval_s`` so that a fast loop does not hammer the database.
Jobs still marked running when a process starts were interrupted: they are failed
with a message saying so.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from aerodrome.errors import AerodromeError, Conflict, NotFound
from aerodrome.storage.tables import jobs

log = logging.getLogger("aerodrome.jobs")
Progress = Callable[[int, int | None, str], None]
Work = Callable[[Progress], dict[str, Any]]


def _now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


class JobRunner:
    def __init__(self, engine: Engine, *, workers: int = 1, write_interval_s: float = 0.5) -> None:
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aerodrome-job")
        self._interval = write_interval_s
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def fail_interrupted(self) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(jobs.c.status.in_(("queued", "running")))
                .values(
                    status="failed",
                    message="interrupted: the process stopped before the job finished",
                    finished_at=_now(),
                )
            )
        return int(result.rowcount or 0)

    def submit(self, kind: str, target: str, work: Work, *, created_by: str) -> str:
        with self._engine.begin() as conn:
            running = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.kind == kind, jobs.c.target == target, jobs.c.status.in_(("queued", "running"))
                )
            ).first()
            if running is not None:
                raise Conflict(
                    f"a {kind} job for {target!r} is already running ({running.id})", code="job_running"
                )
            job_id = new_job_id()
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=kind,
                    target=target,
                    status="queued",
                    done=0,
                    total=None,
                    message="",
                    created_by=created_by,
                    created_at=_now(),
                )
            )
        future = self._pool.submit(self._run, job_id, work)
        with self._lock:
            self._futures[job_id] = future
        return job_id

    def _run(self, job_id: str, work: Work) -> None:
        self._set(job_id, status="running", started_at=_now())
        last = 0.0

        def progress(done: int, total: int | None, message: str) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= self._interval:
                last = now
                self._set(job_id, done=done, total=total, message=message[:1000])

        try:
            result = work(progress)
        except AerodromeError as exc:
            self._set(job_id, status="failed", message=exc.message[:1000], finished_at=_now())
            return
        except Exception as exc:  # boundary: a job must end as failed, never vanish
            log.exception("job failed", extra={"job_id": job_id})
            self._set(
                job_id, status="failed", message=f"{type(exc).__name__}: {exc}"[:1000], finished_at=_now()
            )
            return
        done = int(result.get("documents", result.get("done", 0)) or 0)
        self._set(
            job_id,
            status="succeeded",
            result=result,
            done=done,
            total=done,
            message="finished",
            finished_at=_now(),
        )

    def _set(self, job_id: str, **values: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        with self._lock:
            future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def get_job(engine: Engine, job_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is None:
        raise NotFound(f"no job {job_id!r}", code="job_not_found")
    return dict(row)


def list_jobs(
    engine: Engine, *, kind: str | None = None, target: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    q = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
    if kind:
        q = q.where(jobs.c.kind == kind)
    if target:
        q = q.where(jobs.c.target == target)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
