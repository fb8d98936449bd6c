"""The running platform: every long-lived part, built once at start and closed at stop.

Nothing here is module-level; ``create_app`` builds a Runtime in its lifespan and
hands it to handlers through ``app.state.runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp
from sqlalchemy import Engine, select

from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.secrets import resolve_secret
from aerodrome.catalog.store import build_catalog
from aerodrome.config import DepartmentConfig, DeploymentConfig, PlatformConfig, ProviderConfig
from aerodrome.errors import AerodromeError
from aerodrome.hookspecs import provider_registry
from aerodrome.identity.authenticator import Authenticator
from aerodrome.identity.store import apply_config, load_departments
from aerodrome.limits.budget import BudgetLedger, period_start
from aerodrome.limits.rate import RateLimiter
from aerodrome.monitoring.metrics import Metrics
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.monitoring.runs import spent_since
from aerodrome.monitoring.tracing import make_tracer
from aerodrome.providers.base import Provider, ProviderContext
from aerodrome.routing.router import Router
from aerodrome.storage.engine import is_sqlite, make_engine
from aerodrome.storage.migrate import ensure_current
from aerodrome.storage.tables import api_keys

if TYPE_CHECKING:
    from aerodrome.evidence.transitions import Evidence
    from aerodrome.guardrails.service import Guardrails
    from aerodrome.knowledge.service import KnowledgeService
    from aerodrome.usecases.validation import PlatformRefs

log = logging.getLogger("aerodrome")
REFRESH_S = 5.0


def open_database(config: PlatformConfig, database_url: str | None = None) -> Engine:
    """Engine for the configured database, migrated (embedded) or checked (scaled)."""
    url = database_url or config.resolved_database_url()
    engine = make_engine(url)
    auto = config.database.auto_migrate
    ensure_current(engine, auto_migrate=is_sqlite(url) if auto is None else auto)
    return engine


class Runtime:
    def __init__(self, config: PlatformConfig, engine: Engine) -> None:
        from aerodrome.gateway.pipeline import Gateway

        self.config = config
        self.engine = engine
        self.started_at = time.time()
        self.metrics = Metrics()
        self.catalog: Catalog = build_catalog(config, engine)
        self.departments: dict[str, DepartmentConfig] = load_departments(engine)
        self.policies: dict[str, str] = {d.id: d.content_logging for d in self.departments.values()}
        self.providers: dict[str, Provider] = {}
        self._provider_configs: dict[str, ProviderConfig] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.authenticator = Authenticator(engine, ttl_s=config.server.key_cache_ttl_s)
        self.limiter = RateLimiter()
        self.ledger = BudgetLedger()
        self.writer = RunWriter(
            engine,
            flush_interval_s=config.server.run_flush_interval_s,
            batch_size=config.server.run_batch_size,
        )
        self.metrics.run_records_written.set_function(lambda: self.writer.written)
        self.router = Router(config.routing, lambda: self.providers)
        self.tracer = make_tracer(config.telemetry)  # None: no OpenTelemetry work at all
        self.gateway = Gateway(
            catalog=lambda: self.catalog,
            departments=lambda: self.departments,
            policies=lambda: self.policies,
            server=config.server,
            router=self.router,
            limiter=self.limiter,
            ledger=self.ledger,
            writer=self.writer,
            metrics=self.metrics,
            tracer=self.tracer,
        )
        from aerodrome.jobs.service import JobService

        self._knowledge: KnowledgeService | None = None
        self._guardrails: Guardrails | None = None
        # background jobs: enqueued here; run here too unless `aerodrome worker` processes run them
        self.jobs = JobService(engine, config, lambda: self.knowledge, run_jobs=config.jobs.run_in_server)
        from aerodrome.review.queue import ReviewQueue

        self.reviews = ReviewQueue(engine)  # outputs held for human review, and the decisions
        self._http: aiohttp.ClientSession | None = None
        self._init_usecases()
        self._refresher: asyncio.Task[None] | None = None
        self._warmers: list[asyncio.Task[None]] = []
        self.ready = False

    # ------------------------------------------------------------- lifecycle

    @classmethod
    async def start(cls, config: PlatformConfig, engine: Engine) -> Runtime:
        from aerodrome.knowledge.collections import apply_config as apply_collections

        await asyncio.to_thread(apply_config, engine, config)
        await asyncio.to_thread(apply_collections, engine, config)
        rt = cls(config, engine)
        rt._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
            ),
        )
        rt._build_providers()
        await asyncio.to_thread(rt._seed_budgets)
        await asyncio.to_thread(rt.load_usecases)
        rt._refresher = asyncio.create_task(rt._refresh_loop())
        rt._warmers = [asyncio.create_task(rt._warm(dep)) for dep in rt._local_embedding_deployments()]
        rt._warmers.append(asyncio.create_task(rt._warm_usecases()))
        rt.jobs.start()
        rt.ready = True
        return rt

    def _local_embedding_deployments(self) -> list[DeploymentConfig]:
        return [
            d
            for d in self.catalog.deployments.values()
            if d.kind == "embeddings" and self.catalog.providers[d.provider].kind == "local"
        ]

    async def _warm(self, dep: DeploymentConfig) -> None:
        """Load local embedding models in the background so the first request does not wait for them."""
        try:
            await self.providers[dep.provider].embeddings(dep, {"model": dep.model, "input": "warm up"})
        except AerodromeError as exc:
            log.info("local embeddings not warmed", extra={"deployment": dep.name, "reason": exc.message})

    async def _warm_usecases(self) -> None:
        try:
            await asyncio.to_thread(self.usecases.warm)
        except Exception:  # boundary: a guardrail that cannot warm up fails at its first run instead
            log.exception("could not warm up the use cases' guardrails")

    async def stop(self) -> None:
        self.ready = False
        for task in self._warmers:
            task.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for provider in self.providers.values():
            await provider.aclose()
        if self._http is not None:
            await self._http.close()
        await asyncio.to_thread(self.writer.close)  # flush every pending run record
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.close)  # and every pending span
        await asyncio.to_thread(self.jobs.close)
        if self._knowledge is not None:
            self._knowledge.close()

    def set_departments(self, departments: dict[str, DepartmentConfig]) -> None:
        self.departments = departments
        self.policies = {d.id: d.content_logging for d in departments.values()}

    @property
    def guardrails(self) -> Guardrails:
        """Guardrail checks with their default settings, built on first use."""
        if self._guardrails is None:
            from aerodrome.guardrails.service import Guardrails

            self._guardrails = Guardrails(self.config.guardrails.pii_recognizers)
        return self._guardrails

    @property
    def knowledge(self) -> KnowledgeService:
        """The index and embedders, opened on first use (the gateway alone never needs them)."""
        if self._knowledge is None:
            from aerodrome.knowledge.service import KnowledgeService

            self._knowledge = KnowledgeService(
                self.engine,
                self.config,
                lambda: self.catalog,
                database_url=self.engine.url.render_as_string(hide_password=False),
            )
        return self._knowledge

    # ------------------------------------------------------------- catalog

    def _build_providers(self) -> None:
        """Provider instances for the catalog; unchanged providers are kept, replaced ones closed."""
        assert self._http is not None
        registry = provider_registry()
        providers: dict[str, Provider] = {}
        configs: dict[str, ProviderConfig] = {}
        for name, pconf in self.catalog.providers.items():
            existing = self.providers.get(name)
            if existing is not None and self._provider_configs.get(name) == pconf:
                providers[name], configs[name] = existing, pconf
                continue
            factory = registry.get(pconf.kind)
            api_key = resolve_secret(pconf.api_key, base_dir=self.config.base_dir)
            providers[name] = factory(ProviderContext(config=pconf, http=self._http, api_key=api_key))
            configs[name] = pconf
        retired = [p for name, p in self.providers.items() if providers.get(name) is not p]
        self.providers, self._provider_configs = providers, configs
        for provider in retired:
            task = asyncio.get_running_loop().create_task(provider.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def set_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._build_providers()

    async def _refresh_loop(self) -> None:
        """Pick up catalog, department and policy changes made by other replicas."""
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                catalog = await asyncio.to_thread(build_catalog, self.config, self.engine)
                departments = await asyncio.to_thread(load_departments, self.engine)
                self.set_departments(departments)
                if (
                    catalog.deployments != self.catalog.deployments
                    or catalog.aliases != self.catalog.aliases
                    or catalog.providers != self.catalog.providers
                ):
                    self.set_catalog(catalog)
            except Exception:  # boundary: keep serving on the last good catalog, try again next time
                log.exception("catalog refresh failed; serving the last good catalog")
            try:
                await asyncio.to_thread(self._read_job_counts)
            except Exception:  # boundary: the job gauges keep their last reading
                log.exception("could not read the job counts")
            try:
                await asyncio.to_thread(self.refresh_usecases)
            except Exception:  # boundary: keep serving the use cases loaded last
                log.exception("use-case refresh failed; serving the versions loaded last")

    def _read_job_counts(self) -> None:
        from aerodrome.jobs.queue import counts
        from aerodrome.monitoring.metrics import set_job_counts

        set_job_counts(self.metrics, *counts(self.engine))

    # ------------------------------------------------------------- use cases

    def _init_usecases(self) -> None:
        from aerodrome.usecases.registry import UseCaseRegistry
        from aerodrome.usecases.runner import UseCaseRunner

        folder = self.config.usecases.dir
        if folder is not None and not folder.is_absolute():
            folder = self.config.base_dir / folder
        self.usecases = UseCaseRegistry(
            self.engine,
            folder=folder,
            refs=self.platform_refs,
            pii_recognizers=self.config.guardrails.pii_recognizers,
        )
        self.usecase_runner = UseCaseRunner(
            registry=self.usecases,
            gateway=self.gateway,
            knowledge=lambda: self.knowledge,
            reviews=lambda: self.reviews,
            max_inputs_bytes=self.config.usecases.max_inputs_bytes,
        )
        self._usecases_checked = 0.0

    @property
    def gate_evidence(self) -> Evidence:
        """What the stage gates can ask of metrics, evaluations and budgets (more as they exist)."""
        from functools import partial

        from aerodrome.evidence import readiness
        from aerodrome.evidence.transitions import Evidence

        return Evidence(
            samples=partial(readiness.samples, self.engine), cost=partial(readiness.cost, self.engine)
        )

    def platform_refs(self) -> PlatformRefs:
        """What use-case specs may refer to, as the platform stands now."""
        from aerodrome.usecases.refs import platform_refs

        return platform_refs(self.catalog, self.departments, self.engine)

    def load_usecases(self) -> None:
        """At start: the folder's specs into the database, then every current version compiled."""
        if self.usecases.sync_folder(force=True) is None:
            self.usecases.reload(force=True)
        self._usecases_checked = time.monotonic()

    def refresh_usecases(self) -> None:
        reload_s = self.config.usecases.reload_s
        if reload_s and time.monotonic() - self._usecases_checked >= reload_s:
            self._usecases_checked = time.monotonic()
            self.usecases.sync_folder()
        self.usecases.reload()

    # ------------------------------------------------------------- budgets

    def seed_department_budget(self, dept: DepartmentConfig) -> None:
        """Start a department's budget account from what its runs spent this period."""
        if dept.budget:
            now = datetime.now(UTC)
            spent = spent_since(self.engine, "department_id", period_start(dept.budget.period, now))
            self.ledger.load_spent("department", dept.id, dept.budget, spent.get(dept.id, 0.0))

    def _seed_budgets(self) -> None:
        now = datetime.now(UTC)
        for dept in self.departments.values():
            self.seed_department_budget(dept)
        for alias in self.catalog.aliases.values():
            if alias.budget:
                spent = spent_since(self.engine, "alias", period_start(alias.budget.period, now))
                self.ledger.load_spent("alias", alias.name, alias.budget, spent.get(alias.name, 0.0))
        from aerodrome.config import Budget

        with self.engine.connect() as conn:
            keyed = conn.execute(
                select(
                    api_keys.c.id, api_keys.c.budget_usd, api_keys.c.budget_period, api_keys.c.budget_soft_pct
                ).where(api_keys.c.budget_usd.is_not(None), api_keys.c.revoked_at.is_(None))
            ).all()
        by_period: dict[str, dict[str, float]] = {}
        for key_id, usd, period, soft_pct in keyed:
            budget = Budget(usd=usd, period=period or "month", soft_pct=soft_pct or 0.8)
            if budget.period not in by_period:
                by_period[budget.period] = spent_since(
                    self.engine, "key_id", period_start(budget.period, now)
                )
            self.ledger.load_spent("key", key_id, budget, by_period[budget.period].get(key_id, 0.0))
