"""A worker: threads that claim jobs from the queue, run them, renew their leases, retry failures.

The same worker runs inside ``aerodrome serve`` (embedded mode, ``jobs.run_in_server``) and as
``aerodrome worker`` processes (scaled mode). It also starts the periodic kinds (rollups,
retention) when their schedule is due; the schedule row makes one worker of many do it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from aerodrome.config import JobsConfig
from aerodrome.errors import AerodromeError, Conflict
from aerodrome.hookspecs import Registry
from aerodrome.jobs.context import Job, JobContext
from aerodrome.jobs.queue import Claimed, JobQueue
from aerodrome.jobs.registry import JobKind

log = logging.getLogger("aerodrome.jobs")
SCHEDULE_CHECK_S = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        kinds: Registry[JobKind],
        context: JobContext,
        config: JobsConfig,
        *,
        name: str | None = None,
        progress_interval_s: float = 0.5,
    ) -> None:
        self.queue = queue
        self.kinds = kinds
        self.context = context
        self.config = config
        self.name = name or worker_name()
        self._progress_interval = progress_interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._scheduled_at = 0.0
        self._reclaimed_at = 0.0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for i in range(self.config.threads):
            t = threading.Thread(target=self._loop, name=f"aerodrome-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        beat = threading.Thread(target=self._heartbeats, name="aerodrome-job-lease", daemon=True)
        beat.start()
        self._threads.append(beat)

    def wake(self) -> None:
        """Look for work now (a job was just enqueued in this process)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; wait for running jobs up to ``timeout_s``, then give the rest back."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._held)
        if left:
            log.warning("stopping with %d job(s) running; handing them back to the queue", len(left))
            self.queue.release(left, self.name, "interrupted: the worker stopped; queued again")

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                worked = self.run_once()
            except Exception:  # boundary: a database hiccup must not kill the worker thread
                log.exception("the job worker failed to poll; trying again")
                worked = False
            if not worked:
                self._wake.wait(self.config.poll_s)
                self._wake.clear()

    def run_once(self) -> bool:
        """Schedule what is due, reclaim dead workers' jobs, run one job; True if one ran."""
        mono = time.monotonic()
        if mono - self._scheduled_at >= SCHEDULE_CHECK_S:
            self._scheduled_at = mono
            self.schedule_due()
        if mono - self._reclaimed_at >= min(self.config.lease_s / 3, SCHEDULE_CHECK_S):
            self._reclaimed_at = mono
            if self.queue.reclaim_expired():
                log.warning("jobs of a stopped worker were queued again or failed")
        claimed = self.queue.claim(self.name, self.kinds.names(), self.config.lease_s)
        if claimed is None:
            return False
        self.execute(claimed)
        return True

    def schedule_due(self) -> list[str]:
        """Enqueue the periodic kinds whose turn it is (one worker of many does each)."""
        started = []
        for name in self.kinds.names():
            kind = self.kinds.get(name)
            interval = kind.interval_s(self.context.config) if kind.interval_s else None
            if not interval or not self.queue.take_schedule(name, interval):
                continue
            try:
                self.queue.enqueue(
                    name,
                    kind.target,
                    created_by="system:scheduler",
                    max_attempts=kind.max_attempts or self.config.max_attempts,
                )
                started.append(name)
            except Conflict:  # the previous run is still queued or running: skip this turn
                continue
        if started:
            self._wake.set()
        return started

    def execute(self, claimed: Claimed) -> None:
        with self._lock:
            self._held.add(claimed.id)
        last = 0.0

        def progress(done: int, total: int | None, message: str) -> None:
            nonlocal last
            mono = time.monotonic()
            if mono - last >= self._progress_interval:
                last = mono
                self.queue.progress(claimed.id, self.name, done, total, message)

        job = Job(
            id=claimed.id,
            kind=claimed.kind,
            target=claimed.target,
            payload=claimed.payload,
            attempt=claimed.attempt,
            max_attempts=claimed.max_attempts,
            created_by=claimed.created_by,
            progress=progress,
        )
        try:
            result = self.kinds.get(claimed.kind).run(self.context, job)
            self.queue.succeed(claimed.id, self.name, _jsonable(result))
        except AerodromeError as exc:
            permanent = 400 <= exc.status < 500
            self._failed(claimed, f"{exc.code}: {exc.message}", permanent=permanent)
        except Exception as exc:  # boundary: a job must end as retried or failed, never vanish
            log.exception("job failed", extra={"job_id": claimed.id, "kind": claimed.kind})
            self._failed(claimed, f"{type(exc).__name__}: {exc}", permanent=False)
        finally:
            with self._lock:
                self._held.discard(claimed.id)

    def _failed(self, claimed: Claimed, error: str, *, permanent: bool) -> None:
        retry = None
        if not permanent and claimed.attempt < claimed.max_attempts:
            retry = self.config.backoff_s * 2 ** (claimed.attempt - 1)
        log.warning(
            "job attempt failed",
            extra={
                "job_id": claimed.id,
                "kind": claimed.kind,
                "attempt": claimed.attempt,
                "error": error[:300],
            },
        )
        self.queue.fail(claimed, self.name, error, retry_in_s=retry)

    def _heartbeats(self) -> None:
        every = self.config.lease_s / 3
        while not self._stopping.wait(every):
            with self._lock:
                held = list(self._held)
            try:
                self.queue.heartbeat(held, self.name, self.config.lease_s)
            except Exception:  # boundary: the next beat tries again; the lease still has two thirds
                log.exception("could not renew job leases")


def _jsonable(result: Any) -> dict[str, Any]:
    return result if isinstance(result, dict) else {"result": result}
