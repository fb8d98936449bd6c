"""A use-case answer streamed as the model writes it: which runs may stream, and the events they yield.

A run streams only when its text may be released before it is complete: a text output (not
JSON), no output guardrail (nothing that must read the whole answer) unless the use case opts in
with ``output.stream`` (its output checks then flag the answer once it is complete, never hold or
replace it), and a review policy that would not hold it, decided before the model call (every
reason but output flags is known then; the sample is drawn then). Other runs give their whole answer at the end, as
:meth:`UseCaseRunner.run` does. No HTTP here: the gateway and the console turn events into bytes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aerodrome.errors import AerodromeError, UpstreamError
from aerodrome.gateway.pipeline import Gateway, delta_text, usage_from
from aerodrome.gateway.request import estimate_prompt_tokens, estimate_text_tokens
from aerodrome.gateway.run_context import RunContext
from aerodrome.guardrails.pseudonym_stream import StreamRestorer
from aerodrome.usecases.registry import LiveUseCase

if TYPE_CHECKING:
    from aerodrome.usecases.runner import Outcome


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of the answer, safe to show now (pseudonyms restored)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of the run. ``streamed``: the answer came as deltas before this (else the whole answer
    is in the outcome). ``error``: the upstream failed after text was shown; the outcome's status is
    ``error`` and its output the text shown."""

    outcome: Outcome
    streamed: bool
    error: AerodromeError | None = None
    usage_estimated: bool = False  # the upstream sent no usage: the outcome's is an estimate


RunEvent = Delta | Finished


def not_streamed_because(live: LiveUseCase, review_reasons: list[str]) -> str | None:
    """Why this run must give its whole answer at once (None: it streams)."""
    if live.spec.output.format != "text":
        return "json_output"
    if "output" in live.guards and not live.spec.output.stream:
        return "output_checks"
    if review_reasons:
        return "review:" + review_reasons[0]
    return None


class AnswerStream:
    """The model's answer as it arrives (:meth:`deltas`), pseudonyms restored; fills the outcome
    (draft, usage, status) when it ends.

    A failure before any text is shown: the use case's ``on_upstream_error`` answer when it has one,
    else the error is raised. A failure after: the text shown stays, the outcome says ``error`` and
    :attr:`error` keeps the failure. The upstream stream is closed in every case, also when the
    consumer stops early (the client went away).
    """

    def __init__(
        self,
        gateway: Gateway,
        ctx: RunContext,
        body: dict[str, Any],
        restore: dict[str, str],
        outcome: Outcome,
        on_upstream_error: str | None,
    ) -> None:
        self._gateway = gateway
        self._ctx = ctx
        self._body = {**body, "stream": True}
        self._restorer = StreamRestorer(restore)
        self._outcome = outcome
        self._on_upstream_error = on_upstream_error
        self.error: AerodromeError | None = None
        self.usage_estimated = False

    def _fall_back(self) -> bool:
        if self._on_upstream_error is None:
            return False
        outcome = self._outcome
        outcome.status, outcome.fallback_reason = "fallback", "upstream_error"
        outcome.draft = self._on_upstream_error
        return True

    async def deltas(self) -> AsyncGenerator[Delta, None]:
        shown: list[str] = []
        usage: tuple[int, int] | None = None
        try:
            opened = await self._gateway.open_stream(self._ctx, self._body)
        except UpstreamError:
            if self._fall_back():
                return
            raise
        try:
            chunk: dict[str, Any] | None = opened.first
            while chunk is not None:
                usage = usage_from(chunk) or usage
                piece = self._restorer.feed(delta_text(chunk))
                if piece:
                    shown.append(piece)
                    yield Delta(piece)
                chunk = await anext(opened.rest, None)
            piece = self._restorer.finish()
            if piece:
                shown.append(piece)
                yield Delta(piece)
        except UpstreamError as exc:
            if not shown and self._fall_back():
                return
            if not shown:
                raise
            self._outcome.status, self.error = "error", exc
        finally:
            close = getattr(opened.rest, "aclose", None)
            if close is not None:
                await close()
        text = "".join(shown)
        outcome = self._outcome
        outcome.draft = text
        self.usage_estimated = usage is None
        outcome.usage = usage or (estimate_prompt_tokens(self._body), estimate_text_tokens(text))
        self._ctx.usecase_meta["usage"] = list(outcome.usage)
