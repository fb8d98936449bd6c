"""Evaluations as the platform offers them: plan, run, compare (as a job: aerodrome.evals.jobs)."""

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
    from aerodrome.usecases.registry import UseCaseRegistry

log = logging.getLogger("aerodrome.evals")


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

    def compare(self, base_id: str, candidate_id: str) -> dict[str, Any]:
        return comparison.compare(store.get(self.engine, base_id), store.get(self.engine, candidate_id))
