"""Running a suite: every case through the real use-case runner, on one pinned deployment.

Each case is one call of :class:`aerodrome.usecases.runner.UseCaseRunner` with the use case's
alias pinned to the chosen deployment, under the chosen spec version, by an evaluation
principal (``eval:<who started it>``) in the case's department (default: the use case's first).
The call passes the gateway's admission (department limits, budgets, data-class ceilings) and
writes its run record like any other, with endpoint ``eval`` so that the evidence engine does
not count it as use. Review policy is noted, not applied: nothing waits for a person. A judge
assertion's model call is recorded the same way; its cost is added to the case's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.pricing import cost_usd
from aerodrome.config import EvalsConfig
from aerodrome.errors import AerodromeError, BadRequest
from aerodrome.evals.plan import Plan
from aerodrome.evals.scoring import Observation, Score
from aerodrome.evals.store import CaseResult
from aerodrome.evals.suite import Case
from aerodrome.gateway.pipeline import Gateway, completion_text
from aerodrome.gateway.run_context import RunContext
from aerodrome.identity.principal import Principal
from aerodrome.usecases.runner import Outcome, UseCaseRunner

if TYPE_CHECKING:
    from aerodrome.knowledge.embedding import Embedder

log = logging.getLogger("aerodrome.evals")
ENDPOINT = "eval"
UNLIMITED = 10**12  # evaluation principals skip per-key limits; department limits and budgets still hold
Progress = Callable[[int, int, CaseResult], None]


def no_progress(done: int, total: int, result: CaseResult) -> None:
    return None


@dataclass(slots=True)
class _Spent:
    cost_usd: float = 0.0


class _CaseTools:
    """Model calls of one case's assertions, through the gateway, recorded as evaluation runs."""

    def __init__(self, suite: EvalRunner, plan: Plan, principal: Principal, spent: _Spent) -> None:
        self._suite, self._plan, self._principal, self._spent = suite, plan, principal, spent

    def _ctx(self) -> RunContext:
        ctx = RunContext(endpoint=ENDPOINT, request_id=f"eval-{self._plan.eval_run_id}")
        ctx.usecase_id, ctx.spec_version = self._plan.usecase_id, self._plan.spec_version
        return ctx

    async def _through_gateway(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        gw = self._suite.gateway
        ctx = self._ctx()
        try:
            await gw.admit(ctx, self._principal, body, kind=kind)
            result = await (gw.chat(ctx, body) if kind == "chat" else gw.embeddings(ctx, body))
        except AerodromeError as exc:
            gw.finish(
                ctx,
                status="rejected" if not ctx.attempts.count else "error",
                http_status=exc.status,
                error=exc,
            )
            raise
        gw.finish(
            ctx, status="ok", http_status=200, response=result, output_text=None if kind == "chat" else ""
        )
        usage = result.get("usage") or {}
        dep = ctx.attempts.deployment
        if dep is not None:
            self._spent.cost_usd += cost_usd(
                dep, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        return result

    async def complete(self, alias: str | None, messages: list[dict[str, Any]]) -> str:
        model = alias or self._suite.config.judge_model
        if model is None:
            raise BadRequest("no judge model: give the judge assertion a model or set evals.judge_model")
        result = await self._through_gateway("chat", {"model": model, "messages": messages, "temperature": 0})
        return completion_text(result)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        name = self._suite.config.embedding
        if name == "local":
            embedder = self._suite.local_embedder()
            return await asyncio.to_thread(embedder.embed, texts)
        result = await self._through_gateway("embeddings", {"model": name, "input": texts})
        rows = sorted(result["data"], key=lambda d: d.get("index", 0))
        return [list(map(float, r["embedding"])) for r in rows]


class EvalRunner:
    def __init__(
        self,
        *,
        usecases: UseCaseRunner,
        gateway: Gateway,
        catalog: Callable[[], Catalog],
        config: EvalsConfig,
        local_embedder: Callable[[], Embedder],
    ) -> None:
        self.usecases = usecases
        self.gateway = gateway
        self.catalog = catalog
        self.config = config
        self.local_embedder = local_embedder

    async def run(self, plan: Plan, *, actor: str, progress: Progress = no_progress) -> list[CaseResult]:
        """Every case of the plan's suite, at most ``evals.concurrency`` at once, in suite order."""
        gate = asyncio.Semaphore(self.config.concurrency)
        cases = plan.suite.cases
        done = 0

        async def one(case: Case) -> CaseResult:
            nonlocal done
            async with gate:
                result = await self.run_case(plan, case, actor=actor)
            done += 1
            progress(done, len(cases), result)
            return result

        return list(await asyncio.gather(*(one(c) for c in cases)))

    def _principal(self, plan: Plan, case: Case, actor: str) -> Principal:
        spec = plan.live.spec
        return Principal(
            name=f"eval:{actor}"[:320],
            department_id=case.department or spec.departments[0],
            roles=frozenset({"user"}),
            rpm=UNLIMITED,
            tpm=UNLIMITED,
        )

    async def run_case(self, plan: Plan, case: Case, *, actor: str) -> CaseResult:
        principal = self._principal(plan, case, actor)
        ctx = RunContext(endpoint=ENDPOINT, request_id=f"eval-{plan.eval_run_id}")
        ctx.pin_deployment = plan.deployment
        gw = self.gateway
        obs = Observation(
            case_id=case.id, inputs=case.inputs, reference=case.reference, status="error", output=None
        )
        usage = (0, 0)
        try:
            outcome = await self.usecases.run(
                ctx, principal, plan.usecase_id, case.inputs, hold=False, version=plan.live
            )
        except AerodromeError as exc:
            gw.finish(
                ctx,
                status="rejected" if not ctx.attempts.count else "error",
                http_status=exc.status,
                error=exc,
            )
            obs.error_code, obs.error = exc.code, exc.message
        else:
            usage = outcome.usage
            gw.finish(ctx, status=outcome.status, http_status=200, usage=usage, output_text=_text(outcome))
            _observe(obs, outcome)
        latency_ms = (time.perf_counter() - ctx.started) * 1000
        dep = ctx.attempts.deployment
        spent = _Spent(cost_usd(dep, *usage) if dep is not None and ctx.attempts.count else 0.0)
        tools = _CaseTools(self, plan, principal, spent)
        scores = [await self._score(a, obs, tools) for a in case.assertions]
        return CaseResult(
            case_id=case.id,
            seq=case.seq,
            source=case.source,
            passed=all(s["passed"] for s in scores),
            assertions=scores,
            run_id=ctx.run_id,
            status=obs.status,
            error=obs.error,
            output=obs.output,
            cost_usd=spent.cost_usd,
            latency_ms=latency_ms,
        )

    @staticmethod
    async def _score(assertion: Any, obs: Observation, tools: _CaseTools) -> dict[str, Any]:
        kind = str(getattr(assertion, "kind", type(assertion).__name__))
        try:
            score: Score = await assertion.score(obs, tools)
        except AerodromeError as exc:
            score = Score(False, exc.message[:400])
        except Exception as exc:  # boundary: a (third-party) assertion that crashes fails its case, logged
            log.exception("eval assertion %s failed on case %s", kind, obs.case_id)
            score = Score(False, f"the assertion raised {type(exc).__name__}: {exc}"[:400])
        return {"type": kind, "passed": score.passed, "score": score.score, "detail": score.detail}


def _text(outcome: Outcome) -> str | None:
    draft = outcome.draft
    if draft is None or isinstance(draft, str):
        return draft
    return orjson.dumps(draft).decode()


def _observe(obs: Observation, outcome: Outcome) -> None:
    obs.status = outcome.status
    obs.output = outcome.output
    obs.citations = outcome.citations
    obs.passages = outcome.passages
    obs.flags = outcome.flags
    obs.fallback_reason = outcome.fallback_reason
    obs.review_reasons = outcome.review_reasons
