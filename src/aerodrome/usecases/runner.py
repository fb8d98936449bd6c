"""Running a use case: inputs → guardrails → retrieval → data-class check → model → output checks → review.

The runner uses the gateway's own admission (limits, budgets, data-class ceilings,
routing) and writes the one run record of the call through it, marked with the use
case and the spec version. No HTTP here: routes turn a :class:`Outcome` into an answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aerodrome.errors import Forbidden, UpstreamError
from aerodrome.gateway.pipeline import Gateway, completion_text, highest_class, usage_from
from aerodrome.gateway.request import estimate_prompt_tokens, estimate_text_tokens
from aerodrome.gateway.run_context import RunContext
from aerodrome.guardrails.output import OutputGuardrail
from aerodrome.identity.principal import Principal
from aerodrome.usecases.citations import citations_for, context_text
from aerodrome.usecases.guarding import (
    GuardLog,
    answer_sources,
    check_answer,
    guard_inputs,
    screen_passages,
)
from aerodrome.usecases.inputs import validate_inputs
from aerodrome.usecases.registry import LiveUseCase, UseCaseRegistry
from aerodrome.usecases.review_policy import review_reasons
from aerodrome.usecases.streaming import AnswerStream, Finished, RunEvent, not_streamed_because

if TYPE_CHECKING:
    from aerodrome.knowledge.service import KnowledgeService
    from aerodrome.review.queue import ReviewQueue

LOW_RETRIEVAL_ANSWER = "I could not find this in the knowledge this assistant uses."
INVALID_OUTPUT_ANSWER = (
    "The answer could not be produced in the required form; please try again or ask a person."
)
PENDING_ANSWER = "This answer is being reviewed by a person before release; read it at GET /v1/runs/{run_id}."


_RECORDED_CITATION = ("marker", "document_id", "chunk_id", "collection", "title", "uri", "page", "section")


class UseCaseNotLive(Forbidden):
    code = "usecase_not_live"


@dataclass(slots=True)
class Outcome:
    run_id: str
    usecase_id: str
    spec_version: int
    status: str  # ok | fallback | output_invalid | error (a streamed answer cut by the upstream)
    output: str | dict[str, Any] | list[Any] | None  # None while held for review
    draft: str | dict[str, Any] | list[Any] | None  # what the model answered (after checks)
    citations: list[dict[str, Any]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    review_status: str | None = None
    review_id: str | None = None
    fallback_reason: str | None = None
    usage: tuple[int, int] = (0, 0)
    model: str = ""
    passages: list[dict[str, Any]] = field(default_factory=list)  # retrieved (not in the answer body)
    review_reasons: list[str] = field(default_factory=list)  # why review policy held (or would hold) it

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "object": "usecase.run",
            "run_id": self.run_id,
            "usecase_id": self.usecase_id,
            "spec_version": self.spec_version,
            "status": self.status,
            "output": self.output,
            "citations": self.citations,
            "flags": self.flags,
            "review_status": self.review_status,
            "review_id": self.review_id,
            "fallback_reason": self.fallback_reason,
            "model": self.model,
            "usage": {
                "prompt_tokens": self.usage[0],
                "completion_tokens": self.usage[1],
                "total_tokens": sum(self.usage),
            },
            "ai_assisted": True,
        }


@dataclass(slots=True)
class _Run:
    """A run between its preparation and its answer."""

    live: LiveUseCase
    principal: Principal
    prepared: dict[str, Any]  # the inputs as the model sees them
    passages: list[dict[str, Any]]
    log: GuardLog
    outcome: Outcome
    data_class: str | None
    low_retrieval: bool  # retrieval is configured and found nothing: the fallback, no model call


class UseCaseRunner:
    def __init__(
        self,
        *,
        registry: UseCaseRegistry,
        gateway: Gateway,
        knowledge: Callable[[], KnowledgeService],
        reviews: Callable[[], ReviewQueue],
        max_inputs_bytes: int,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.registry = registry
        self._gw = gateway
        self._knowledge = knowledge
        self._reviews = reviews
        self._max_inputs_bytes = max_inputs_bytes
        self._draw = draw

    # ----------------------------------------------------------------- the run

    async def run(
        self,
        ctx: RunContext,
        principal: Principal,
        usecase_id: str,
        inputs: Any,
        *,
        declared_class: str | None = None,
        live: LiveUseCase | None = None,
        hold: bool = True,
        version: LiveUseCase | None = None,
    ) -> Outcome:
        """One run of the use case: its current version, or the compiled ``live`` / ``version``
        (red-team runs plant a canary in a copy; evaluations pin a spec version). ``hold=False``
        (evaluation and red-team runs) releases what review would hold, noting why in
        ``review_reasons``: they must not fill the reviewers' queue."""
        run = await self._begin(ctx, principal, usecase_id, inputs, declared_class, live or version)
        await self._answer_whole(ctx, run)
        await self._conclude(ctx, run, apply=hold, draw=self._draw)
        return run.outcome

    async def stream(
        self,
        ctx: RunContext,
        principal: Principal,
        usecase_id: str,
        inputs: Any,
        *,
        declared_class: str | None = None,
    ) -> AsyncGenerator[RunEvent, None]:
        """One run whose answer is yielded as the model writes it, when the use case allows it
        (see :mod:`aerodrome.usecases.streaming`): :class:`Delta` events, then :class:`Finished`.
        Other runs yield only :class:`Finished`, with the same outcome :meth:`run` gives. Errors
        before any text is shown are raised (the run is not recorded here: the caller does)."""
        run = await self._begin(ctx, principal, usecase_id, inputs, declared_class, None)
        drawn = self._draw()  # the review sample is drawn before the call: a streamed answer is out

        def draw() -> float:
            return drawn

        spec = run.live.spec
        before = review_reasons(spec, flags=run.log.flags, fallback=False, draw=draw)
        why_not = "low_retrieval" if run.low_retrieval else not_streamed_because(run.live, before)
        ctx.usecase_meta["stream"] = {"streamed": why_not is None, "why_not": why_not}
        if why_not is not None:
            await self._answer_whole(ctx, run)
            await self._conclude(ctx, run, draw=draw)
            yield Finished(run.outcome, streamed=False)
            return
        body = await self._admit(ctx, run)
        answer = AnswerStream(
            self._gw, ctx, body, run.log.restore, run.outcome, spec.fallback.on_upstream_error
        )
        streamed = False
        async with aclosing(answer.deltas()) as deltas:
            async for delta in deltas:
                streamed = True
                yield delta
        if streamed:
            run.outcome.citations = (
                citations_for(str(run.outcome.draft), run.passages) if run.passages else []
            )
            if answer.error is None:  # an answer cut short is not judged by its checks
                await self._check_shown(run, body)
        await self._conclude(ctx, run, draw=draw, released=streamed)
        yield Finished(
            run.outcome, streamed=streamed, error=answer.error, usage_estimated=answer.usage_estimated
        )

    async def _begin(
        self,
        ctx: RunContext,
        principal: Principal,
        usecase_id: str,
        inputs: Any,
        declared_class: str | None,
        live: LiveUseCase | None,
    ) -> _Run:
        """Everything before the model call: inputs, guardrails, retrieval, the request's data class."""
        live = live or self.registry.get(usecase_id)
        spec = live.spec
        ctx.usecase_id, ctx.spec_version = live.id, live.version
        ctx.model = spec.model
        ctx.principal = principal
        if principal.department_id not in spec.departments:
            raise UseCaseNotLive(
                f"the use case {live.id!r} is not live in your department ({principal.department_id}); "
                f"it is live in {spec.departments}"
            )
        values = validate_inputs(spec, inputs, max_bytes=self._max_inputs_bytes)
        log = GuardLog()
        ctx.usecase_meta["guardrails"] = log.results
        prepared, passages = await asyncio.to_thread(self._prepare, live, principal, values, log)
        ctx.usecase_inputs = prepared
        outcome = Outcome(
            run_id=ctx.run_id,
            usecase_id=live.id,
            spec_version=live.version,
            status="ok",
            output=None,
            draft=None,
            model=spec.model,
            passages=passages,
        )
        classes = [spec.data_class, declared_class]
        if log.pii_sent:
            classes.append(spec.guardrails.pii_data_class)
        classes += [p["data_class"] for p in passages]  # the class of each collection retrieved from
        ctx.usecase_meta["retrieved"] = [p["chunk_id"] for p in passages]
        return _Run(
            live=live,
            principal=principal,
            prepared=prepared,
            passages=passages,
            log=log,
            outcome=outcome,
            data_class=highest_class(*classes),
            low_retrieval=spec.retrieval is not None and not passages,
        )

    @staticmethod
    async def _check_shown(run: _Run, body: dict[str, Any]) -> None:
        """Output checks of an answer already shown as it came (``output.stream``; the spec allows
        only flagging checks then): findings are logged and flag the run (for the evidence and the
        reviewers' sample); nothing is held, replaced or redacted."""
        guard = run.live.guards.get("output")
        if guard is None:
            return
        assert isinstance(guard, OutputGuardrail)
        sources = answer_sources(body, run.prepared, run.passages, run.log)
        checked = await check_answer(guard, str(run.outcome.draft or ""), run.log, sources)
        if checked.flagged:
            run.log.flags.append("flagged:output")

    async def _answer_whole(self, ctx: RunContext, run: _Run) -> None:
        if run.low_retrieval:
            outcome = run.outcome
            outcome.status, outcome.fallback_reason = "fallback", "low_retrieval"
            outcome.draft = run.live.spec.fallback.on_low_retrieval or LOW_RETRIEVAL_ANSWER
            ctx.logging_policy = self._gw.logging_policy(run.principal)
            return
        await self._call_model(
            ctx, run.live, run.prepared, run.passages, run.data_class, run.log, run.outcome
        )

    async def _conclude(
        self,
        ctx: RunContext,
        run: _Run,
        *,
        draw: Callable[[], float],
        apply: bool = True,
        released: bool = False,
    ) -> None:
        """Flags, the review policy (``released``: the answer was shown as it came, nothing to hold),
        and what the run record keeps of it."""
        outcome = run.outcome
        outcome.flags = list(dict.fromkeys(run.log.flags))
        if released:
            outcome.output = outcome.draft
        else:
            await self._review(ctx, run.live, run.principal, run.prepared, outcome, apply=apply, draw=draw)
        ctx.usecase_meta.update(
            {
                "status": outcome.status,
                "flags": outcome.flags,
                "citations": [{k: c[k] for k in _RECORDED_CITATION} for c in outcome.citations],
                "review": {"id": outcome.review_id, "status": outcome.review_status}
                if outcome.review_id
                else None,
                "fallback_reason": outcome.fallback_reason,
            }
        )

    def _prepare(
        self, live: LiveUseCase, principal: Principal, values: dict[str, Any], log: GuardLog
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Guard the inputs and retrieve (blocking work, run in a thread)."""
        prepared = guard_inputs(live, values, log)
        retrieval = live.spec.retrieval
        if retrieval is None:
            return prepared, []
        # the search sees the inputs as the model will (redacted): an embeddings model may be a vendor's
        if live.query is not None:
            query = live.query.render(self._variables(live, prepared, []))
        else:
            main = live.spec.main_input()
            query = str(prepared.get(main) or "") if main else ""
        if not query.strip():
            return prepared, []
        passages = self._knowledge().retrieve(
            principal,
            retrieval.collections,
            query,
            top_k=retrieval.top_k,
            filters=retrieval.filters,
            min_score=retrieval.min_score,
            mode=retrieval.mode,
        )
        return prepared, screen_passages(passages, retrieval.hidden_instructions, log)

    def _variables(
        self, live: LiveUseCase, values: dict[str, Any], passages: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            **values,
            "context": context_text(passages),
            "passages": [
                {
                    "n": i,
                    "text": p.get("text"),
                    "title": p.get("title"),
                    "document_id": p.get("document_id"),
                    "section": (p.get("source") or {}).get("section"),
                }
                for i, p in enumerate(passages, 1)
            ],
            "usecase": {"id": live.id, "title": live.spec.title, "version": live.version},
            "today": datetime.now(UTC).date().isoformat(),
        }

    def _body(
        self, live: LiveUseCase, prepared: dict[str, Any], passages: list[dict[str, Any]]
    ) -> dict[str, Any]:
        spec = live.spec
        variables = self._variables(live, prepared, passages)
        messages = []
        if live.system is not None:
            messages.append({"role": "system", "content": live.system.render(variables)})
        messages.append({"role": "user", "content": live.prompt.render(variables)})
        body: dict[str, Any] = {"model": spec.model, "messages": messages}
        if spec.max_tokens is not None:
            body["max_tokens"] = spec.max_tokens
        if spec.temperature is not None:
            body["temperature"] = spec.temperature
        if spec.output.format == "json":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": spec.id.replace("-", "_"),
                    "schema": spec.output.schema_,
                    "strict": False,
                },
            }
        return body

    async def _call_model(
        self,
        ctx: RunContext,
        live: LiveUseCase,
        prepared: dict[str, Any],
        passages: list[dict[str, Any]],
        data_class: str | None,
        log: GuardLog,
        outcome: Outcome,
    ) -> None:
        spec = live.spec
        body = self._body(live, prepared, passages)
        principal = ctx.principal
        assert principal is not None
        await self._gw.admit(ctx, principal, body, kind="chat", declared_class=data_class)
        try:
            result = await self._gw.chat(ctx, body)
        except UpstreamError:
            if spec.fallback.on_upstream_error is None:
                raise
            outcome.status, outcome.fallback_reason = "fallback", "upstream_error"
            outcome.draft = spec.fallback.on_upstream_error
            return
        usage = self._usage(body, result)
        text = log.restore_text(completion_text(result))
        guard = live.guards.get("output")
        assert guard is None or isinstance(guard, OutputGuardrail)
        sources = answer_sources(body, prepared, passages, log)
        checked = await check_answer(guard, text, log, sources)
        schema_errors = checked.schema_errors
        if schema_errors and spec.output.repair:
            repair = {
                **body,
                "messages": [
                    *body["messages"],
                    {"role": "assistant", "content": text},
                    {
                        "role": "user",
                        "content": "Your answer does not match the required JSON schema:\n- "
                        + "\n- ".join(schema_errors)
                        + "\nReply with only the corrected JSON.",
                    },
                ],
            }
            ctx.usecase_meta["repaired"] = True
            result = await self._gw.chat(ctx, repair)
            second = self._usage(repair, result)
            usage = (usage[0] + second[0], usage[1] + second[1])
            text = log.restore_text(completion_text(result))
            checked = await check_answer(guard, text, log, sources)
            schema_errors = checked.schema_errors
        outcome.usage = usage
        ctx.usecase_meta["usage"] = list(usage)
        if schema_errors:
            outcome.status, outcome.fallback_reason = "output_invalid", "schema"
            outcome.draft = spec.fallback.on_invalid_output or INVALID_OUTPUT_ANSWER
            log.flags.append("flagged:output")
            ctx.usecase_meta["schema_errors"] = schema_errors[:10]
            return
        if checked.flagged:
            log.flags.append("flagged:output")
            output_spec = spec.guardrails.output
            replaced_by = checked.replaced_by(output_spec.on_violation if output_spec is not None else "flag")
            if replaced_by is not None:
                outcome.status, outcome.fallback_reason = "fallback", "output_" + replaced_by
                outcome.draft = spec.fallback.on_invalid_output or INVALID_OUTPUT_ANSWER
                return
        text = checked.text  # personal data redacted where the use case says so
        outcome.draft = guard.parse_json(text) if guard is not None and spec.output.format == "json" else text
        outcome.citations = citations_for(text, passages) if passages else []

    async def _admit(self, ctx: RunContext, run: _Run) -> dict[str, Any]:
        """The model request of a streamed run, admitted (limits, budgets, data-class ceilings)."""
        body = {**self._body(run.live, run.prepared, run.passages), "stream": True}
        await self._gw.admit(ctx, run.principal, body, kind="chat", declared_class=run.data_class)
        return body

    @staticmethod
    def _usage(body: dict[str, Any], result: dict[str, Any]) -> tuple[int, int]:
        found = usage_from(result)
        if found is not None:
            return found
        return estimate_prompt_tokens(body), estimate_text_tokens(completion_text(result))

    async def _review(
        self,
        ctx: RunContext,
        live: LiveUseCase,
        principal: Principal,
        prepared: dict[str, Any],
        outcome: Outcome,
        *,
        apply: bool = True,
        draw: Callable[[], float],
    ) -> None:
        reasons = review_reasons(live.spec, flags=outcome.flags, fallback=outcome.status != "ok", draw=draw)
        outcome.review_reasons = reasons
        if not reasons or not apply:
            outcome.output = outcome.draft
            return
        from aerodrome.review.queue import Hold

        hold = Hold(
            run_id=ctx.run_id,
            usecase_id=live.id,
            spec_version=live.version,
            department_id=principal.department_id,
            requester=principal.name,
            key_id=principal.key_id,
            user_id=principal.user_id,
            reasons=reasons,
            draft={
                "output": outcome.draft,
                "citations": outcome.citations,
                "inputs": prepared,
                "status": outcome.status,
            },
        )
        outcome.review_id = await asyncio.to_thread(self._reviews().hold, hold)
        outcome.review_status = "pending"
        outcome.output = None
