"""The running platform: every long-lived part, built once at start and closed at stop.

Nothing here is module-level; ``create_app`` builds a Runtime in its lifespan and
hands it to handlers through ``app.state.runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp
from sqlalchemy import Engine, select

from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.secrets import resolve_secret
from aerodrome.catalog.store import build_catalog
from aerodrome.config import (
    Budget,
    DepartmentConfig,
    DeploymentConfig,
    PlatformConfig,
    ProviderConfig,
    WebhookConfig,
)
from aerodrome.errors import AerodromeError
from aerodrome.hookspecs import provider_registry
from aerodrome.identity.authenticator import Authenticator
from aerodrome.identity.store import apply_config, load_departments
from aerodrome.limits.backend import LimitsBackend, LocalLimits
from aerodrome.limits.budget import period_start
from aerodrome.monitoring.metrics import Metrics
from aerodrome.monitoring.profiler import Profiler
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.monitoring.runs import spent_since
from aerodrome.monitoring.tracing import make_tracer
from aerodrome.providers.base import Provider, ProviderContext
from aerodrome.routing.router import Router
from aerodrome.storage.engine import is_sqlite, make_engine
from aerodrome.storage.migrate import ensure_current
from aerodrome.storage.tables import api_keys

if TYPE_CHECKING:
    from aerodrome.cache.semantic import SemanticCache
    from aerodrome.evals.service import Evaluations
    from aerodrome.evidence.transitions import Evidence
    from aerodrome.gateway.inflight import InflightJournal
    from aerodrome.guardrails.service import Guardrails
    from aerodrome.knowledge.service import KnowledgeService
    from aerodrome.monitoring.alert_store import Changes as AlertChanges
    from aerodrome.storage.redis_link import RedisLink
    from aerodrome.usecases.validation import PlatformRefs

log = logging.getLogger("aerodrome")
REFRESH_S = 5.0
ALERT_TICK_S = 1.0  # seconds between checks for due alert messages


def open_database(config: PlatformConfig, database_url: str | None = None) -> Engine:
    """Engine for the configured database, migrated (embedded) or checked (scaled)."""
    url = database_url or config.resolved_database_url()
    engine = make_engine(url)
    auto = config.database.auto_migrate
    ensure_current(engine, auto_migrate=is_sqlite(url) if auto is None else auto)
    return engine


class Runtime:
    def __init__(self, config: PlatformConfig, engine: Engine, *, run_jobs: bool = True) -> None:
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
        # Scaled mode: limits, budgets and revocations shared by every replica through Redis.
        self.redis: RedisLink | None = None
        self.limits: LimitsBackend = LocalLimits()
        if config.redis is not None:  # redis-py is imported only then (it costs memory)
            from aerodrome.limits.redis_backend import RedisLimits
            from aerodrome.storage.redis_link import RedisLink

            self.redis = RedisLink(config.redis, base_dir=config.base_dir)
            self.limits = RedisLimits(self.redis, spent_of=self.spent_of)
        self._revocations: asyncio.Task[None] | None = None
        from aerodrome.cache.response import LocalResponseCache, ResponseCache

        self.response_cache: ResponseCache = LocalResponseCache(
            max_entries=config.cache.max_entries, max_entry_bytes=config.cache.max_entry_bytes
        )
        if self.redis is not None:
            from aerodrome.cache.redis_response import RedisResponseCache

            self.response_cache = RedisResponseCache(self.redis, max_entry_bytes=config.cache.max_entry_bytes)
        self.semantic_cache = self._semantic_cache()
        self.writer = RunWriter(
            engine,
            flush_interval_s=config.server.run_flush_interval_s,
            batch_size=config.server.run_batch_size,
        )
        self.metrics.run_records_written.set_function(lambda: self.writer.written)
        # Scaled mode: calls in flight are journaled in Redis; a survivor records a dead replica's.
        self.inflight: InflightJournal | None = None
        if self.redis is not None:
            from aerodrome.gateway.inflight import InflightJournal
            from aerodrome.limits.redis_backend import RedisLimits

            limits = self.limits
            release = limits.release if isinstance(limits, RedisLimits) else None
            self.inflight = InflightJournal(
                self.redis, writer=self.writer, metrics=self.metrics, release=release
            )
            self.writer.on_committed = self.inflight.forget
        self.router = Router(config.routing, lambda: self.providers)
        mon = config.monitoring
        self.profiler: Profiler | None = (
            Profiler(
                engine,
                embedder=lambda: self.knowledge.local_embedding(),
                flush_interval_s=mon.flush_interval_s,
                max_backlog=mon.max_backlog,
                embed_policies=mon.embed_inputs,
            )
            if mon.profile_inputs
            else None
        )
        if self.profiler is not None:
            profiler = self.profiler
            self.metrics.profiler_backlog.set_function(lambda: profiler.backlog)
        self.tracer = make_tracer(config.telemetry)  # None: no OpenTelemetry work at all
        self.gateway = Gateway(
            catalog=lambda: self.catalog,
            departments=lambda: self.departments,
            policies=lambda: self.policies,
            server=config.server,
            router=self.router,
            limits=self.limits,
            writer=self.writer,
            metrics=self.metrics,
            profiler=self.profiler,
            tracer=self.tracer,
            cache=self.response_cache,
            semantic=self.semantic_cache,
            inflight=self.inflight.admitted if self.inflight is not None else None,
        )
        from aerodrome.jobs.service import JobService

        self._knowledge: KnowledgeService | None = None
        self._knowledge_lock = threading.Lock()
        self._guardrails: Guardrails | None = None
        self._evals: Evaluations | None = None
        # background jobs: enqueued here; run here too unless `aerodrome worker` processes run them
        # (or this runtime serves a command beside running servers: run_jobs=False)
        self.jobs = JobService(
            engine, config, lambda: self.knowledge, run_jobs=run_jobs and config.jobs.run_in_server
        )
        from aerodrome.review.queue import ReviewQueue

        self.reviews = ReviewQueue(engine)  # outputs held for human review, and the decisions
        self._http: aiohttp.ClientSession | None = None
        self._init_usecases()
        self._refresher: asyncio.Task[None] | None = None
        self._alerter: asyncio.Task[None] | None = None
        self._evaluated = time.monotonic()  # the first evaluation comes one interval after start
        self._warmers: list[asyncio.Task[None]] = []
        self.ready = False

    # ------------------------------------------------------------- lifecycle

    @classmethod
    async def start(cls, config: PlatformConfig, engine: Engine, *, run_jobs: bool = True) -> Runtime:
        """``run_jobs=False`` for a command working beside running servers (``aerodrome eval``,
        ``aerodrome redteam``, a worker's platform): the queued jobs are the servers' and workers'."""
        from aerodrome.knowledge.collections import apply_config as apply_collections

        await asyncio.to_thread(apply_config, engine, config)
        await asyncio.to_thread(apply_collections, engine, config)
        rt = cls(config, engine, run_jobs=run_jobs)
        from aerodrome.jobs.context import Platform

        platform = Platform(rt, asyncio.get_running_loop())
        rt.jobs.context.platform = lambda: platform  # eval and red-team jobs run use cases here
        rt._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
            ),
        )
        rt._build_providers()
        await rt.limits.start()
        if rt.inflight is not None:
            await rt.inflight.start()  # its first sweep records the calls of replicas that died
        if not rt.limits.seeds_itself:
            await asyncio.to_thread(rt._seed_budgets)
        if rt.redis is not None:
            from aerodrome.identity import revocations

            await rt.redis.ping()  # logs an outage now rather than at the first request
            rt._revocations = asyncio.create_task(
                revocations.listen(rt.redis, rt.authenticator.forget, rt.authenticator.forget_all)
            )
        await asyncio.to_thread(rt.load_usecases)
        rt._refresher = asyncio.create_task(rt._refresh_loop())
        rt._alerter = asyncio.create_task(rt._alert_loop())
        rt._warmers = [asyncio.create_task(rt._warm(dep)) for dep in rt._local_embedding_deployments()]
        rt._warmers.append(asyncio.create_task(rt._warm_usecases()))
        rt.jobs.start()
        if rt._semantic_aliases():
            rt._warmers.append(asyncio.create_task(rt._warm_semantic_cache()))
        rt.ready = True
        return rt

    def _semantic_cache(self) -> SemanticCache:
        """Similar questions' answers: in process, or in Redis (shared) in scaled mode; the questions
        are embedded with the process's one local model (loaded on first use)."""
        from aerodrome.cache.semantic import LocalSemanticStore, SemanticCache, SemanticStore

        conf = self.config.cache
        store: SemanticStore = LocalSemanticStore(
            max_partitions=conf.max_entries,
            max_per_partition=conf.semantic_max_per_partition,
            max_entry_bytes=conf.max_entry_bytes,
        )
        if self.redis is not None:
            from aerodrome.cache.redis_semantic import RedisSemanticStore

            store = RedisSemanticStore(
                self.redis,
                max_per_partition=conf.semantic_max_per_partition,
                max_entry_bytes=conf.max_entry_bytes,
            )
        return SemanticCache(store, embedder=lambda: self.knowledge.local_embedding())

    def _semantic_aliases(self) -> bool:
        return any(
            a.cache is not None and a.cache.semantic is not None for a in self.catalog.aliases.values()
        )

    async def _warm_semantic_cache(self) -> None:
        """Load the embedding model before the first question to an alias with a semantic cache."""
        try:
            await asyncio.to_thread(self.knowledge.local_embedding().embed, ["warm up"])
        except AerodromeError as exc:
            log.info("semantic cache not warmed", extra={"reason": exc.message})

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
        # the jobs first: a running evaluation still needs the providers, limits and run writer
        await asyncio.to_thread(self.jobs.close)
        for task in self._warmers:
            task.cancel()
        for loop in (self._refresher, self._alerter):
            if loop is not None:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        if self._revocations is not None:
            self._revocations.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._revocations
        for provider in self.providers.values():
            await provider.aclose()
        if self._http is not None:
            await self._http.close()
        await asyncio.to_thread(self.writer.close)  # flush every pending run record
        if self.inflight is not None:
            await self.inflight.close()  # every call is recorded: this replica's journal goes
        if self.profiler is not None:
            await asyncio.to_thread(self.profiler.close)  # and the traffic profiles measured so far
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.close)  # and every pending span
        await self.limits.close()  # send pending budget settlements (Redis)
        if self.redis is not None:
            await self.redis.close()
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
    def evals(self) -> Evaluations:
        """Eval suites: planning, running through the use-case runner, comparing (built on first use)."""
        if self._evals is None:
            from aerodrome.evals.runner import EvalRunner
            from aerodrome.evals.service import Evaluations

            runner = EvalRunner(
                usecases=self.usecase_runner,
                gateway=self.gateway,
                catalog=lambda: self.catalog,
                config=self.config.evals,
                local_embedder=lambda: self.knowledge.local_embedding(),
            )
            self._evals = Evaluations(
                self.engine, self.config, registry=self.usecases, catalog=lambda: self.catalog, runner=runner
            )
        return self._evals

    @property
    def knowledge(self) -> KnowledgeService:
        """The index and embedders, opened on first use (the gateway alone never needs them).

        Worker threads ask for it too (the traffic profiler's embedder), hence the lock."""
        if self._knowledge is None:
            from aerodrome.knowledge.service import KnowledgeService

            with self._knowledge_lock:
                if self._knowledge is None:
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
                await asyncio.to_thread(self._watch_jobs)
            except Exception:  # boundary: the job gauges keep their last reading
                log.exception("could not read the job counts or end orphaned eval runs")
            try:
                await asyncio.to_thread(self.refresh_usecases)
            except Exception:  # boundary: keep serving the use cases loaded last
                log.exception("use-case refresh failed; serving the versions loaded last")

    def _watch_jobs(self) -> None:
        from aerodrome.evals.store import fail_orphaned
        from aerodrome.jobs.queue import counts
        from aerodrome.monitoring.metrics import set_job_counts

        set_job_counts(self.metrics, *counts(self.engine))
        fail_orphaned(self.engine)  # eval runs whose job died with its worker

    # ------------------------------------------------------------- alerts

    async def _alert_loop(self) -> None:
        """Evaluate alert rules every ``alerts.evaluate_every_s``; send due messages every second."""
        while True:
            await asyncio.sleep(ALERT_TICK_S)
            if time.monotonic() - self._evaluated >= self.config.alerts.evaluate_every_s:
                self._evaluated = time.monotonic()
                try:
                    await asyncio.to_thread(self.evaluate_alerts)
                except Exception:  # boundary: try again at the next evaluation
                    log.exception("alert evaluation failed; it will run again")
            try:
                await self.deliver_alerts()
            except Exception:  # boundary: queued messages stay pending and are retried
                log.exception("alert delivery failed; queued messages will be retried")

    def evaluate_alerts(self, now: datetime | None = None) -> AlertChanges:
        """One evaluation of every alert rule (blocking; the loop runs it in a thread)."""
        from aerodrome.monitoring import alerts

        specs = [u.spec for u in self.usecases.all()]
        changes = alerts.evaluate(
            self.engine, self.config.alerts, specs, self.departments, now or datetime.now(UTC)
        )
        for event, ids in (
            ("fired", changes.fired),
            ("resolved", changes.resolved),
            ("reminded", changes.reminded),
        ):
            if ids:
                self.metrics.alerts_changed.labels(event).inc(len(ids))
        return changes

    async def deliver_alerts(self) -> dict[str, int]:
        """Send every alert message that is due (retries included)."""
        from aerodrome.monitoring import alert_delivery, webhook

        assert self._http is not None
        http = self._http
        base_dir = self.config.base_dir

        async def send(hook: WebhookConfig, payload: dict[str, object]) -> None:
            await webhook.post(http, hook, payload, base_dir=base_dir)

        counts = await alert_delivery.deliver_due(
            self.engine,
            send=send,
            webhooks={w.name: w for w in self.config.alerts.webhooks},
            policy=self.config.alerts.delivery,
            now=lambda: datetime.now(UTC),
            run_sync=asyncio.to_thread,
        )
        for status, outcome in (("sent", "sent"), ("pending", "retry"), ("failed", "failed")):
            if counts[status]:
                self.metrics.alert_messages.labels(outcome).inc(counts[status])
        return counts

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
        from aerodrome.evidence.readiness import gate_evidence

        return gate_evidence(self.engine, self.config, lambda: self.catalog)

    def platform_refs(self) -> PlatformRefs:
        """What use-case specs may refer to, as the platform stands now."""
        from aerodrome.usecases.refs import platform_refs

        hooks = [w.name for w in self.config.alerts.webhooks]
        return platform_refs(self.catalog, self.departments, self.engine, webhooks=hooks)

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

    async def key_revoked(self, prefix: str) -> None:
        """Refuse a revoked key here at once, and on every replica at once in scaled mode."""
        self.authenticator.forget(prefix)
        if self.redis is not None:
            from aerodrome.identity import revocations

            await revocations.announce(self.redis, prefix)

    # ------------------------------------------------------------- budgets

    def spent_of(self, kind: str, ident: str, budget: Budget) -> float:
        """What the run records say one budget scope spent this period (seeds a budget account)."""
        column = {"department": "department_id", "key": "key_id", "alias": "alias"}[kind]
        since = period_start(budget.period, datetime.now(UTC))
        return spent_since(self.engine, column, since, ident).get(ident, 0.0)

    def seed_department_budget(self, dept: DepartmentConfig) -> None:
        """Start a department's budget account from what its runs spent this period."""
        if dept.budget and not self.limits.seeds_itself:
            self.limits.load_spent(
                "department", dept.id, dept.budget, self.spent_of("department", dept.id, dept.budget)
            )

    def _seed_budgets(self) -> None:
        now = datetime.now(UTC)
        for dept in self.departments.values():
            self.seed_department_budget(dept)
        for alias in self.catalog.aliases.values():
            if alias.budget:
                spent = spent_since(self.engine, "alias", period_start(alias.budget.period, now))
                self.limits.load_spent("alias", alias.name, alias.budget, spent.get(alias.name, 0.0))
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
            self.limits.load_spent("key", key_id, budget, by_period[budget.period].get(key_id, 0.0))
