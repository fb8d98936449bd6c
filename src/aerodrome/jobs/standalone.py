"""What an ``aerodrome worker`` process builds for its jobs (a server hands over its own parts)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.store import build_catalog
from aerodrome.config import PlatformConfig
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

    def close(self) -> None:
        if self._knowledge is not None:
            self._knowledge.close()


class StandaloneJobs:
    """A JobService that runs jobs, with the parts a worker process builds itself."""

    def __init__(self, engine: Engine, config: PlatformConfig) -> None:
        self._parts = _Parts(engine, config)
        self.service = JobService(engine, config, self._parts.knowledge, run_jobs=True)

    def close(self) -> None:
        self.service.close()
        self._parts.close()
