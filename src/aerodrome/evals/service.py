"""Evaluations as the platform offers them: plan, run (now or as a background job), compare."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from aerodrome.config import PlatformConfig
from aerodrome.errors import AerodromeError
from aerodrome.evals import comparison, store
from aerodrome.evals.plan import Plan, prepare
from aerodrome.evals.runner import EvalRunner, Progress, no_progress

if TYPE_CHECKING:
    from aerodrome.catalog.catalog import Catalog
    from aerodrome.jobs.runner import JobRunner
    from aerodrome.usecases.registry import UseCaseRegistry

log = logging.getLogger("aerodrome.evals")
JOB_KIND = "eval"


class Evaluations:
    def __init__(
        self,
        engine: Engine,
        config: PlatformConfig,
        *,
        registry: UseCaseRegistry,
        catalog: Callable[[], Catalog],
        runner: EvalRunner,
    ) -> None:
        self.engine = engine
        self.config = config
        self.registry = registry
        self._catalog = catalog
        self.runner = runner

    def plan(
        self, usecase_id: str, *, deployment: str | None = None, spec_version: int | None = None
    ) -> Plan:
        return prepare(
            self.engine,
            self.registry,
            self._catalog(),
            self.config,
            usecase_id,
            deployment=deployment,
            spec_version=spec_version,
        )

    def start(self, plan: Plan, *, actor: str) -> str:
        """Record the run as running; its id goes into every case's request id."""
        plan.eval_run_id = store.create(self.engine, plan.key(), actor=actor)
        return plan.eval_run_id

    async def execute(self, plan: Plan, *, actor: str, progress: Progress = no_progress) -> dict[str, Any]:
        """Run every case of a started plan and store the results; the stored run (without results)."""
        started = time.perf_counter()
        try:
            results = await self.runner.run(plan, actor=actor, progress=progress)
        except BaseException as exc:
            message = exc.message if isinstance(exc, AerodromeError) else f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(store.fail, self.engine, plan.eval_run_id, message)
            raise
        return await asyncio.to_thread(
            store.finish, self.engine, plan.eval_run_id, results, duration_s=time.perf_counter() - started
        )

    def submit(self, plan: Plan, *, actor: str, jobs: JobRunner, loop: asyncio.AbstractEventLoop) -> str:
        """Run a started plan as a background job (one per use case at a time) on the server's loop."""

        def work(report: Callable[[int, int | None, str], None]) -> dict[str, Any]:
            def progress(done: int, total: int, result: store.CaseResult) -> None:
                report(done, total, f"{result.case_id}: {'passed' if result.passed else 'failed'}")

            future = asyncio.run_coroutine_threadsafe(
                self.execute(plan, actor=actor, progress=progress), loop
            )
            run = future.result()
            return {"done": run["cases"], "eval_run_id": run["id"], "status": run["status"]}

        try:
            job_id = jobs.submit(JOB_KIND, plan.usecase_id, work, created_by=actor)
        except AerodromeError as exc:
            store.fail(self.engine, plan.eval_run_id, exc.message)
            raise
        store.set_job(self.engine, plan.eval_run_id, job_id)
        return job_id

    def compare(self, base_id: str, candidate_id: str) -> dict[str, Any]:
        return comparison.compare(store.get(self.engine, base_id), store.get(self.engine, candidate_id))
