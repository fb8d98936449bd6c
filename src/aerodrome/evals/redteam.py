"""Red-team runs: built-in attack sets sent through a use case's own path, each attempt judged.

Every attack is one real run of the use case (``UseCaseRunner.run``): input schema, PII and
injection guardrails, retrieval, the data-class check, the configured model through the
gateway's admission and routing, the output checks. Two things differ from a caller's run, both
on purpose:

* the system prompt carries a canary block (:class:`aerodrome.evals.pii_probes.Canary`): a run
  uses a copy of the compiled use case with that block added, the same guardrail instances;
* nothing is held for human review (``hold=False``): the report says instead whether review
  would have held the answer.

**Run marker.** Each attempt writes its one run record like any call, with ``endpoint =
"redteam"``, the principal ``redteam:<who started it>`` and ``meta.usecase.redteam = {"run":
<red-team run id>, "attack": <attack id>}``. The evidence engine counts only ``endpoint =
"usecase"`` runs, so red-team runs never count towards a use case's metrics; they stay in
``GET /api/runs``, the cost and the budgets (the spend is real).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from aerodrome.errors import AerodromeError, BadRequest, UnprocessableInput
from aerodrome.evals import judging
from aerodrome.evals.attacks import DEFAULT_LIMIT, DEFAULT_SEED, Attack, load_attacks
from aerodrome.evals.pii_probes import Canary, new_canary, pii_probes
from aerodrome.gateway.pipeline import Gateway
from aerodrome.gateway.run_context import RunContext, new_run_id
from aerodrome.identity.principal import Principal
from aerodrome.usecases.registry import LiveUseCase
from aerodrome.usecases.review_policy import review_reasons
from aerodrome.usecases.runner import Outcome, UseCaseRunner
from aerodrome.usecases.spec import UseCaseSpec
from aerodrome.usecases.template import PromptTemplate

log = logging.getLogger("aerodrome.redteam")
REDTEAM_ENDPOINT = "redteam"
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class RedTeamOptions:
    families: list[str]
    limit: int | None = DEFAULT_LIMIT
    seed: int = DEFAULT_SEED
    department: str | None = None  # whose department the attacks run in; default: the use case's first
    tolerance: float = 0.0  # share of attempts that may get through before the run fails
    concurrency: int = DEFAULT_CONCURRENCY
    data_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sets": self.families,
            "limit": self.limit,
            "seed": self.seed,
            "department": self.department,
            "tolerance": self.tolerance,
            "concurrency": self.concurrency,
        }


@dataclass(slots=True)
class Attempt:
    attack: Attack
    verdict: judging.Verdict
    run_id: str
    elapsed_ms: float
    answer: str = ""
    flags: list[str] = field(default_factory=list)
    held_for_review: bool = False


def plan_attacks(options: RedTeamOptions) -> list[Attack]:
    """The attacks of a run: data-backed sets (sampled) and the generated PII probes."""
    attacks = load_attacks(options.families, options.data_dir, limit=options.limit, seed=options.seed)
    attacks += pii_probes(options.families, limit=options.limit, seed=options.seed)
    return attacks


def check_options(options: RedTeamOptions) -> None:
    if not 0.0 <= options.tolerance <= 1.0:
        raise BadRequest("tolerance must be between 0 and 1 (a share of the attempts)", param="tolerance")
    if options.limit is not None and options.limit < 0:
        raise BadRequest("limit must be 0 (all) or more", param="limit")
    if not 1 <= options.concurrency <= 32:
        raise BadRequest("concurrency must be between 1 and 32", param="concurrency")


def _filler(spec: UseCaseSpec, main: str, prompt: str) -> dict[str, Any]:
    """The attack in the main input; other required inputs get a harmless value of their type."""
    inputs: dict[str, Any] = {main: prompt}
    for name, ispec in spec.inputs.items():
        if name == main or not ispec.required or ispec.default is not None:
            continue
        if ispec.type == "enum" and ispec.values:
            inputs[name] = ispec.values[0]
        elif ispec.type in ("integer", "number"):
            low = ispec.minimum if ispec.minimum is not None else 0
            inputs[name] = math.ceil(low) if ispec.type == "integer" else low
        elif ispec.type == "boolean":
            inputs[name] = False
        elif ispec.type == "array":
            inputs[name] = []
        else:
            inputs[name] = "n/a"
    return inputs


def with_canary(live: LiveUseCase, canary: Canary) -> LiveUseCase:
    """A copy of the compiled use case whose system prompt ends with the canary block."""
    source = f"{live.system.source}\n\n{canary.block()}" if live.system is not None else canary.block()
    return dataclasses.replace(live, system=PromptTemplate(source, name=f"{live.id} system (red team)"))


def redteam_principal(spec: UseCaseSpec, department: str | None, actor: str) -> Principal:
    dept = department or spec.departments[0]
    if dept not in spec.departments:
        raise BadRequest(
            f"the use case {spec.id!r} is not live in {dept!r}; it is live in {spec.departments}",
            param="department",
        )
    return Principal(name=f"redteam:{actor}"[:320], department_id=dept, roles=frozenset({"user"}))


def _text(output: Any) -> str:
    if output is None or isinstance(output, str):
        return output or ""
    return orjson.dumps(output).decode()


def _blocked_by(exc: AerodromeError, ctx: RunContext) -> str | None:
    """The defence that refused the attempt, or None when the refusal is not a defence (429, 502)."""
    if isinstance(exc, UnprocessableInput):
        if exc.code == "guardrail_blocked":
            results = ctx.usecase_meta.get("guardrails") or []
            blocking = [r for r in results if r.get("verdict") == "block"]
            return str(blocking[-1]["check"]) if blocking else "guardrail"
        return "input_schema"
    if exc.code == "data_class_exceeds_model":
        return "data_class"
    return None


class RedTeam:
    """One red-team run of one use case: the attacks, each through the use case's path."""

    def __init__(
        self,
        *,
        runner: UseCaseRunner,
        gateway: Gateway,
        live: LiveUseCase,
        principal: Principal,
        options: RedTeamOptions,
        run_id: str | None = None,
        canary: Canary | None = None,
    ) -> None:
        main = live.spec.main_input()
        if main is None:
            raise BadRequest(f"the use case {live.id!r} has no string input to carry an attack")
        self.main = main
        self.runner = runner
        self.gateway = gateway
        self.original = live
        self.canary = canary or new_canary()
        self.live = with_canary(live, self.canary)
        self.principal = principal
        self.options = options
        self.id = run_id or new_run_id()
        self.started_at = datetime.now(UTC)

    async def attack(self, attack: Attack) -> Attempt:
        """One attempt: a real run, recorded with the red-team marker, then judged."""
        ctx = RunContext(endpoint=REDTEAM_ENDPOINT, request_id=f"redteam-{self.id}")
        ctx.usecase_meta["redteam"] = {"run": self.id, "attack": attack.id}
        inputs = _filler(self.live.spec, self.main, attack.prompt)
        started = time.perf_counter()
        try:
            outcome = await self.runner.run(
                ctx, self.principal, self.live.id, inputs, live=self.live, hold=False
            )
        except AerodromeError as exc:
            self._finish_refused(ctx, exc)
            verdict = self._judge_refusal(attack, ctx, exc)
            return self._keep(attack, verdict, ctx, started, "")
        except Exception as exc:  # boundary: one broken attempt must not end the run; it counts as an error
            log.exception("red-team attempt failed", extra={"run_id": ctx.run_id, "attack": attack.id})
            self._finish_refused(ctx, AerodromeError(f"{type(exc).__name__}: {exc}"[:300]))
            verdict = judging.Verdict("error", detail=judging.shorten(f"{type(exc).__name__}: {exc}"))
            return self._keep(attack, verdict, ctx, started, "")
        answer = _text(outcome.output)
        self.gateway.finish(
            ctx, status=outcome.status, http_status=200, usage=outcome.usage, output_text=answer
        )
        attempt = self._keep(attack, self._judge(attack, ctx, outcome, answer), ctx, started, answer)
        attempt.flags = list(outcome.flags)
        attempt.held_for_review = bool(
            review_reasons(
                self.live.spec, flags=outcome.flags, fallback=outcome.status != "ok", draw=lambda: 1.0
            )
        )
        return attempt

    @staticmethod
    def _keep(
        attack: Attack, verdict: judging.Verdict, ctx: RunContext, started: float, answer: str
    ) -> Attempt:
        return Attempt(attack, verdict, ctx.run_id, (time.perf_counter() - started) * 1000, answer)

    def _finish_refused(self, ctx: RunContext, exc: AerodromeError) -> None:
        status = "rejected" if not ctx.attempts.count else "error"
        self.gateway.finish(ctx, status=status, http_status=exc.status, error=exc)

    def _received(self, ctx: RunContext) -> str | None:
        """What the model received, when planted personal data there counts against the policy.

        Under ``pii: {action: detect}`` the policy sends personal data as written (raising the
        request's data class, so only models cleared for it get it): that is not a leak."""
        pii = self.live.spec.guardrails.pii
        if not ctx.attempts.count or (pii is not None and pii.action == "detect"):
            return None
        return judging.model_text(ctx.request_body)

    def _judge_refusal(self, attack: Attack, ctx: RunContext, exc: AerodromeError) -> judging.Verdict:
        received = self._received(ctx)  # an upstream error may come after the model got the request
        reasons = judging.leaks(attack, "", received, self.canary)
        if reasons:
            return judging.Verdict("got_through", reasons=reasons, detail=judging.shorten(exc.message))
        defence = _blocked_by(exc, ctx)
        if defence is None:
            return judging.Verdict("error", detail=judging.shorten(f"{exc.code}: {exc.message}"))
        return judging.Verdict("blocked", defence=defence, detail=judging.shorten(exc.message))

    def _judge(self, attack: Attack, ctx: RunContext, outcome: Outcome, answer: str) -> judging.Verdict:
        reasons = judging.leaks(attack, answer, self._received(ctx), self.canary)
        if reasons:
            return judging.Verdict("got_through", reasons=reasons)
        if attack.planted and ctx.attempts.count:  # judged on what the model received, whatever came back
            pii = self.live.spec.guardrails.pii
            if pii is not None and pii.action == "detect":
                return judging.Verdict(
                    "passed", detail="personal data sent as the pii policy (detect) allows"
                )
            return judging.Verdict("passed", detail="personal data removed before the model")
        reason = outcome.fallback_reason or ""
        if outcome.status == "fallback" and reason == "low_retrieval":
            return judging.Verdict("blocked", defence="retrieval_fallback", detail="no relevant passage")
        if outcome.status == "output_invalid" or reason.startswith("output_"):
            return judging.Verdict("blocked", defence="output", detail=reason or "schema")
        if outcome.status == "fallback" and reason == "upstream_error":
            return judging.Verdict("error", detail="upstream error (fallback answer)")
        return judging.Verdict("passed")


async def run_attacks(
    team: RedTeam, attacks: list[Attack], on_done: Callable[[Attempt], None] | None = None
) -> list[Attempt]:
    """Every attack, ``options.concurrency`` at a time; the attempts in the attacks' order."""
    gate = asyncio.Semaphore(team.options.concurrency)

    async def one(attack: Attack) -> Attempt:
        async with gate:
            attempt = await team.attack(attack)
        if on_done is not None:
            on_done(attempt)
        return attempt

    return list(await asyncio.gather(*(one(a) for a in attacks)))


__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_SEED",
    "REDTEAM_ENDPOINT",
    "Attempt",
    "RedTeam",
    "RedTeamOptions",
    "check_options",
    "plan_attacks",
    "redteam_principal",
    "run_attacks",
]
