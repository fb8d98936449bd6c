"""The jobs a process enqueues and (embedded, or as ``aerodrome worker``) runs.

``enqueue(kind, target, ...)`` writes a queued job and returns its id; whichever worker is
running picks it up: the one in this process (``jobs.run_in_server``, woken at once) or an
``aerodrome worker`` process (within ``jobs.poll_s``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from aerodrome.config import PlatformConfig
from aerodrome.jobs.context import JobContext
from aerodrome.jobs.queue import JobQueue
from aerodrome.jobs.registry import job_registry
from aerodrome.jobs.worker import Worker

if TYPE_CHECKING:
    from aerodrome.knowledge.service import KnowledgeService


class JobService:
    def __init__(
        self,
        engine: Engine,
        config: PlatformConfig,
        knowledge: Callable[[], KnowledgeService],
        *,
        run_jobs: bool,
    ) -> None:
        self.config = config
        self.queue = JobQueue(engine)
        self.kinds = job_registry()
        self.context = JobContext(engine=engine, config=config, knowledge=knowledge)
        self.worker = Worker(self.queue, self.kinds, self.context, config.jobs) if run_jobs else None

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()

    def enqueue(
        self, kind: str, target: str, *, created_by: str, payload: dict[str, Any] | None = None
    ) -> str:
        spec = self.kinds.get(kind)  # unknown kinds fail here, not on a worker
        job_id = self.queue.enqueue(
            kind,
            target,
            payload=payload,
            created_by=created_by,
            max_attempts=spec.max_attempts or self.config.jobs.max_attempts,
            exclusive=spec.exclusive,
        )
        if self.worker is not None:
            self.worker.wake()
        return job_id

    def retry(self, job_id: str, *, actor: str) -> None:
        self.queue.retry(job_id, actor=actor)
        if self.worker is not None:
            self.worker.wake()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
