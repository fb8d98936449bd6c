"""What an ``aerodrome worker`` process builds for its jobs (a server hands over its own parts)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.store import build_catalog
from aerodrome.config import PlatformConfig
from aerodrome.jobs.context import Platform
from aerodrome.jobs.service import JobService

if TYPE_CHECKING:
    from aerodrome.knowledge.service import KnowledgeService

CATALOG_REFRESH_S = 5.0


class _Parts:
    """The catalog (re-read every few seconds, kept while unchanged) and the knowledge service."""

    def __init__(self, engine: Engine, config: PlatformConfig) -> None:
        self.engine = engine
        self.config = config
        self._catalog = build_catalog(config, engine)
        self._read_at = time.monotonic()
        self._knowledge: KnowledgeService | None = None
        self._platform: Platform | None = None
        self._loop_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def catalog(self) -> Catalog:
        with self._lock:
            if time.monotonic() - self._read_at >= CATALOG_REFRESH_S:
                self._read_at = time.monotonic()
                fresh = build_catalog(self.config, self.engine)
                old = self._catalog
                if (fresh.deployments, fresh.aliases, fresh.providers) != (
                    old.deployments,
                    old.aliases,
                    old.providers,
                ):
                    self._catalog = fresh
            return self._catalog

    def knowledge(self) -> KnowledgeService:
        with self._lock:
            if self._knowledge is None:
                from aerodrome.knowledge.service import KnowledgeService

                self._knowledge = KnowledgeService(
                    self.engine,
                    self.config,
                    self.catalog,
                    database_url=self.engine.url.render_as_string(hide_password=False),
                )
            return self._knowledge

    def platform(self) -> Platform:
        """The whole platform, for jobs that run use cases (evaluations, red-team runs): started on
        first use on an event loop of its own thread, with the jobs left to this worker."""
        with self._lock:
            if self._platform is None:
                from aerodrome.runtime import Runtime

                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="aerodrome-platform", daemon=True)
                thread.start()
                started = asyncio.run_coroutine_threadsafe(
                    Runtime.start(self.config, self.engine, run_jobs=False), loop
                )
                try:
                    runtime = started.result()
                except BaseException:
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(5)
                    raise
                self._platform, self._loop_thread = Platform(runtime, loop), thread
            return self._platform

    def close(self) -> None:
        if self._platform is not None:
            platform, self._platform = self._platform, None
            asyncio.run_coroutine_threadsafe(platform.runtime.stop(), platform.loop).result(30)
            platform.loop.call_soon_threadsafe(platform.loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(5)
        if self._knowledge is not None:
            self._knowledge.close()


class StandaloneJobs:
    """A JobService that runs jobs, with the parts a worker process builds itself."""

    def __init__(self, engine: Engine, config: PlatformConfig) -> None:
        self._parts = _Parts(engine, config)
        self.service = JobService(engine, config, self._parts.knowledge, run_jobs=True)
        self.service.context.platform = self._parts.platform

    def close(self) -> None:
        self.service.close()
        self._parts.close()
