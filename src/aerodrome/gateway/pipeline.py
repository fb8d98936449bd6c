"""The request pipeline: admission (model, limits, budgets), routing, the run record.

No HTTP here: the routes read bodies and render answers; this module decides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aerodrome.cache.response import ResponseCache, cache_key
from aerodrome.cache.semantic import SemanticCache
from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.pricing import cost_usd, worst_case_usd
from aerodrome.config import DATA_CLASS_ORDER, DepartmentConfig, ServerConfig
from aerodrome.errors import AerodromeError, BadRequest
from aerodrome.gateway.request import estimate_prompt_tokens, estimate_text_tokens, requested_max_tokens
from aerodrome.gateway.run_context import RunContext
from aerodrome.identity.principal import Principal
from aerodrome.limits.backend import LimitsBackend, RateCheck
from aerodrome.limits.budget import BudgetScope
from aerodrome.monitoring.metrics import Metrics
from aerodrome.monitoring.profiler import Profiler
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.monitoring.tracing import RunTracer
from aerodrome.routing.router import OpenStream, Router

log = logging.getLogger("aerodrome.gateway")
UNCACHED_ENDPOINTS = frozenset({"eval", "redteam"})  # runs that must reach the model


def highest_class(*classes: str | None) -> str | None:
    """The highest data class named (public < internal < confidential < restricted); 400 on an unknown one."""
    found = None
    for cls in classes:
        if cls is None:
            continue
        if cls not in DATA_CLASS_ORDER:
            raise BadRequest(
                f"unknown data class {cls!r}; classes are {list(DATA_CLASS_ORDER)}",
                code="invalid_data_class",
                param="x-aerodrome-data-class",
            )
        if found is None or DATA_CLASS_ORDER[cls] > DATA_CLASS_ORDER[found]:
            found = cls
    return found


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool


def usage_from(data: dict[str, Any] | None) -> tuple[int, int] | None:
    usage = data.get("usage") if data else None
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return prompt, completion


def completion_text(data: dict[str, Any]) -> str:
    parts = []
    for choice in data.get("choices") or ():
        msg = choice.get("message") or {}
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return "".join(parts)


def delta_text(chunk: dict[str, Any]) -> str:
    """The text a stream chunk adds (content, and tool calls' names and arguments)."""
    pieces = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            pieces.append(content)
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            pieces.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(pieces)


class Gateway:
    def __init__(
        self,
        *,
        catalog: Callable[[], Catalog],
        departments: Callable[[], dict[str, DepartmentConfig]],
        policies: Callable[[], dict[str, str]],
        server: ServerConfig,
        router: Router,
        limits: LimitsBackend,
        writer: RunWriter,
        metrics: Metrics,
        profiler: Profiler | None = None,
        tracer: RunTracer | None = None,
        cache: ResponseCache | None = None,
        semantic: SemanticCache | None = None,
        inflight: Callable[[RunContext, bool], None] | None = None,
    ) -> None:
        self.cache = cache
        # scaled mode: journal each admitted call, so a survivor records it if this replica dies
        self._inflight = inflight
        self.semantic = semantic
        self._catalog = catalog
        self._departments = departments
        self._policies = policies
        self._server = server
        self.router = router
        self.limits = limits
        self.writer = writer
        self.metrics = metrics
        self.profiler = profiler  # features of use-case runs for drift monitoring (off the hot path)
        self.tracer = tracer  # None unless telemetry.otlp_endpoint is set

    # ----------------------------------------------------------------- admission

    def logging_policy(self, principal: Principal) -> str:
        """What the principal's department lets run records keep: off, metadata or full."""
        return self._policies().get(principal.department_id, "metadata")

    async def admit(
        self,
        ctx: RunContext,
        principal: Principal,
        body: dict[str, Any],
        *,
        kind: str,
        declared_class: str | None = None,
    ) -> None:
        """Resolve the model, respect data-class ceilings, pass limits and budgets; raises 400/403/404/429."""
        ctx.principal = principal
        ctx.model = body["model"]
        ctx.logging_policy = self._policies().get(principal.department_id, "metadata")
        ctx.request_body = body
        catalog = self._catalog()
        resolved = catalog.resolve(body["model"], principal)
        if ctx.pin_deployment is not None:
            resolved = catalog.pinned(resolved, ctx.pin_deployment)
        ctx.resolved = resolved
        data_class = highest_class(principal.data_class, declared_class)
        if data_class is not None:
            ctx.data_class = data_class
            resolved, ctx.rerouted_from = catalog.within_ceiling(resolved, data_class)
            ctx.resolved = resolved
        kinds = {d.kind for d in resolved.deployments}
        if kind not in kinds:
            raise BadRequest(
                f"the model {resolved.name!r} serves {'/'.join(sorted(kinds))}, not {kind}",
                param="model",
                code="wrong_model_kind",
            )
        dept = self._departments().get(principal.department_id)
        prompt = ctx.prompt_estimate = estimate_prompt_tokens(body)
        rpm_default = self._server.default_key_limits.rpm
        tpm_default = self._server.default_key_limits.tpm
        key_id = principal.key_id or principal.name
        dept_rpm = dept.limits.rpm if dept else None
        dept_tpm = dept.limits.tpm if dept else None
        candidates = (
            ("key", key_id, "requests", principal.rpm or rpm_default, 1),
            ("department", principal.department_id, "requests", dept_rpm, 1),
            ("key", key_id, "tokens", principal.tpm or tpm_default, prompt),
            ("department", principal.department_id, "tokens", dept_tpm, prompt),
        )
        rates = [RateCheck(s, i, w, lim, n) for s, i, w, lim, n in candidates if lim is not None]
        scopes = []
        if dept is not None and dept.budget is not None:
            scopes.append(BudgetScope("department", dept.id, dept.budget))
        if principal.budget is not None and principal.key_id is not None:
            scopes.append(BudgetScope("key", principal.key_id, principal.budget))
        if resolved.alias.budget is not None:
            scopes.append(BudgetScope("alias", resolved.name, resolved.alias.budget))
        amount = 0.0
        if scopes:
            in_price, out_price = resolved.max_prices()
            max_out = requested_max_tokens(body) or resolved.max_output_tokens()
            amount = worst_case_usd(in_price, out_price, prompt, max_out)
        if rates or scopes:  # one call (one round trip on Redis) for every limit and budget
            ctx.reservation = await self.limits.admit(rates, scopes, amount)
        if self._inflight is not None:
            self._inflight(ctx, bool(body.get("stream")))

    # ----------------------------------------------------------------- calls

    async def chat(self, ctx: RunContext, body: dict[str, Any]) -> dict[str, Any]:
        """The answer from the alias's response cache (exact, then semantic; if on and found), else
        from the model."""
        assert ctx.resolved is not None
        conf = ctx.resolved.alias.cache
        if conf is not None and (ctx.pin_deployment is not None or ctx.endpoint in UNCACHED_ENDPOINTS):
            conf = None  # evaluations and red-team attempts measure the model, never a stored answer
        if conf is None or ctx.cache_bypass or self.cache is None or ctx.principal is None:
            return await self.router.chat(ctx.resolved, body, ctx.attempts)
        department, alias = ctx.principal.department_id, ctx.resolved.name
        ctx.cache_key = cache_key(department, ctx.data_class, alias, body)
        hit = await self.cache.get(ctx.cache_key)
        if hit is not None:
            ctx.cache_hit, ctx.cache_match = True, "exact"
            return hit
        probe = None
        if conf.semantic is not None and self.semantic is not None and ctx.usecase_id is None:
            probe = await self.semantic.probe(conf.semantic, department, ctx.data_class, alias, body)
            found = None if probe is None else await self.semantic.search(probe, conf.semantic.threshold)
            if found is not None:
                ctx.cache_hit, ctx.cache_match = True, "semantic"
                ctx.cache_similarity = found.similarity
                return found.response
        result = await self.router.chat(ctx.resolved, body, ctx.attempts)
        await self.cache.put(ctx.cache_key, result, conf.ttl_s)
        if probe is not None and self.semantic is not None:
            await self.semantic.add(probe, result, conf.ttl_s)
        return result

    async def embeddings(self, ctx: RunContext, body: dict[str, Any]) -> dict[str, Any]:
        assert ctx.resolved is not None
        return await self.router.embeddings(ctx.resolved, body, ctx.attempts)

    async def open_stream(self, ctx: RunContext, body: dict[str, Any]) -> OpenStream:
        assert ctx.resolved is not None
        ctx.stream = True
        opts = body.get("stream_options") or {}
        ctx.include_usage = bool(opts.get("include_usage"))
        upstream_body = {**body, "stream_options": {**opts, "include_usage": True}}
        opened = await self.router.open_stream(ctx.resolved, upstream_body, ctx.attempts)
        ctx.ttft_s = time.perf_counter() - ctx.started
        return opened

    # ----------------------------------------------------------------- the run record

    def finish(
        self,
        ctx: RunContext,
        *,
        status: str,
        http_status: int,
        error: AerodromeError | None = None,
        response: dict[str, Any] | None = None,
        usage: tuple[int, int] | None = None,
        output_text: str | None = None,
    ) -> None:
        """Write the one run record of this call (idempotent), settle budgets, count metrics."""
        if ctx.finished:
            return
        ctx.finished = True
        latency = time.perf_counter() - ctx.started
        dep = ctx.attempts.deployment
        if usage is None and response is not None:
            usage = usage_from(response)
        estimated = False
        if usage is None:
            called = ctx.attempts.count > 0
            text = output_text if output_text is not None else (completion_text(response) if response else "")
            usage = (ctx.prompt_estimate if called else 0, estimate_text_tokens(text) if text else 0)
            estimated = called
        prompt_tokens, completion_tokens = usage
        cost = cost_usd(dep, prompt_tokens, completion_tokens) if ctx.attempts.count else 0.0
        principal = ctx.principal
        usage_checks: list[RateCheck] = []
        if principal is not None and completion_tokens:
            dept = self._departments().get(principal.department_id)
            key_tpm = principal.tpm or self._server.default_key_limits.tpm
            dept_tpm = dept.limits.tpm if dept else None
            if key_tpm is not None:
                usage_checks.append(
                    RateCheck("key", principal.key_id or principal.name, "tokens", key_tpm, completion_tokens)
                )
            if dept_tpm is not None:
                usage_checks.append(
                    RateCheck("department", principal.department_id, "tokens", dept_tpm, completion_tokens)
                )
        if ctx.reservation is not None or usage_checks:
            self.limits.settle(ctx.reservation, cost, usage_checks)
        alias = ctx.resolved.name if ctx.resolved else (ctx.model or "")[:128]  # the column's size
        department = principal.department_id if principal else ""
        code = error.code if error is not None else None
        # Metric labels only take catalog names: a client's unknown model name must not grow the series.
        self.metrics.observe_request(
            endpoint=ctx.endpoint,
            alias=ctx.resolved.name if ctx.resolved else "unknown",
            department=department,
            status=status,
            latency_s=latency,
            ttft_s=ctx.ttft_s,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
            error_code=code,
            attempts=ctx.attempts.count,
            deployment=dep.name if dep else None,
        )
        record: dict[str, Any] = {
            "id": ctx.run_id,
            "request_id": ctx.request_id,
            "created_at": ctx.created_at,
            "endpoint": ctx.endpoint,
            "key_id": principal.key_id if principal else None,
            "user_id": principal.user_id if principal else None,
            "principal": principal.name if principal else "anonymous",
            "department_id": principal.department_id if principal else None,
            "alias": alias or None,
            "deployment": dep.name if dep else None,
            "provider": dep.provider if dep else None,
            "upstream_model": dep.model if dep else None,
            "use_case_id": ctx.usecase_id,
            "spec_version": ctx.spec_version,
            "stream": ctx.stream,
            "status": status,
            "error_code": code,
            "http_status": http_status,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "tokens_estimated": estimated,
            "cost_usd": cost,
            "latency_ms": round(latency * 1000, 3),
            "ttft_ms": round(ctx.ttft_s * 1000, 3) if ctx.ttft_s is not None else None,
            "attempts": ctx.attempts.count,
            "cache_hit": ctx.cache_hit,
            "input": None,
            "output": None,
            "meta": self._meta(ctx, error),
        }
        self._content(ctx, record, response, output_text)
        self.writer.submit(record)
        if self.profiler is not None and ctx.usecase_id is not None:
            answer = (
                output_text if output_text is not None else (completion_text(response) if response else None)
            )
            self.profiler.observe_run(ctx, status, answer)
        if self.tracer is not None:
            self.tracer.record(
                record,
                requested_model=ctx.model,
                response_model=response.get("model") if isinstance(response, dict) else None,
                deployment=dep,
                provider=self._catalog().providers.get(dep.provider) if dep else None,
            )
        if self._server.access_log:
            log.info(
                "gateway call",
                extra={
                    "run_id": ctx.run_id,
                    "request_id": ctx.request_id,
                    "principal": record["principal"],
                    "department": department,
                    "alias": record["alias"],
                    "deployment": record["deployment"],
                    "status": status,
                    "http_status": http_status,
                    "latency_ms": record["latency_ms"],
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "code": code,
                },
            )
        if error is not None and status == "error":
            log.warning(
                "gateway call failed",
                extra={
                    "run_id": ctx.run_id,
                    "request_id": ctx.request_id,
                    "code": code,
                    "alias": alias,
                    "department": department,
                    "attempts": ctx.attempts.count,
                    "error": error.message[:300],
                },
            )

    def _meta(self, ctx: RunContext, error: AerodromeError | None) -> dict[str, Any] | None:
        meta: dict[str, Any] = {}
        if ctx.attempts.errors:
            meta["upstream_errors"] = ctx.attempts.errors[-6:]
        if ctx.attempts.fallback:
            meta["fallback"] = True
        if ctx.data_class is not None:
            meta["data_class"] = ctx.data_class
        if ctx.rerouted_from is not None:
            meta["rerouted_from"] = ctx.rerouted_from
        if ctx.cache_match is not None:
            meta["cache"] = {"match": ctx.cache_match}
            if ctx.cache_similarity is not None:
                meta["cache"]["similarity"] = round(ctx.cache_similarity, 4)
        if error is not None:
            meta["error"] = error.message[:500]
        if ctx.resolved is not None and ctx.resolved.warnings:
            meta["warnings"] = list(ctx.resolved.warnings)
        if ctx.usecase_id is not None:
            meta["usecase"] = ctx.usecase_meta
        return meta or None

    def _content(
        self,
        ctx: RunContext,
        record: dict[str, Any],
        response: dict[str, Any] | None,
        output_text: str | None,
    ) -> None:
        policy = ctx.logging_policy
        body = ctx.request_body
        if body is None and ctx.usecase_inputs is not None:  # a use case answered without a model call
            body = {}
        if policy == "off" or body is None:
            return
        text = output_text if output_text is not None else (completion_text(response) if response else None)
        if policy == "full":
            record["input"] = {k: body[k] for k in ("messages", "input", "tools") if k in body}
            if ctx.usecase_inputs is not None:
                record["input"]["inputs"] = ctx.usecase_inputs
            record["output"] = {"text": text} if text is not None else None
            return
        messages = body.get("messages") or []
        record["input"] = {
            "messages": len(messages),
            "roles": [m.get("role") for m in messages if isinstance(m, dict)][:50],
            "tools": len(body.get("tools") or []),
        }
        if text is not None:
            record["output"] = {"chars": len(text)}


async def drain(stream: AsyncIterator[dict[str, Any]]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
