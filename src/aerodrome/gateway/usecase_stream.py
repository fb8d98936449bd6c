"""A use case's answer streamed to its caller: one run record however the stream ends, and the
answer as OpenAI chat-completion chunks while the model writes it."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson

from aerodrome.errors import AerodromeError
from aerodrome.gateway.pipeline import Gateway
from aerodrome.gateway.run_context import RunContext
from aerodrome.gateway.streaming import BodyStream
from aerodrome.usecases.chat import DONE, ChunkWriter, sse
from aerodrome.usecases.runner import Outcome
from aerodrome.usecases.streaming import Delta, Finished, RunEvent

log = logging.getLogger("aerodrome.gateway")


def output_text(outcome: Outcome) -> str | None:
    """The answer as the run record keeps it (JSON outputs as text)."""
    draft = outcome.draft
    if draft is None or isinstance(draft, str):
        return draft
    return orjson.dumps(draft).decode()


def record(
    gateway: Gateway,
    ctx: RunContext,
    outcome: Outcome,
    error: AerodromeError | None = None,
    *,
    usage_estimated: bool = False,
) -> None:
    """The run record of a run that produced an outcome (``usage_estimated``: the gateway estimates
    the tokens and marks them so)."""
    gateway.finish(
        ctx,
        status=outcome.status,
        http_status=200,
        error=error,
        usage=None if usage_estimated else outcome.usage,
        output_text=output_text(outcome),
    )


async def recorded(
    gateway: Gateway, ctx: RunContext, events: AsyncGenerator[RunEvent, None]
) -> AsyncGenerator[RunEvent, None]:
    """The run's events, with its one run record: written at :class:`Finished` (ok, fallback, error
    mid-stream), or as ``client_disconnected`` when the consumer stops before (cancelled, closed).
    An exception is left to the caller, which records it (its status, its audit event)."""
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, Finished):
                    record(gateway, ctx, event.outcome, event.error, usage_estimated=event.usage_estimated)
                yield event
    except Exception:
        raise
    except BaseException:  # cancelled or closed: the client went away (a no-op once recorded)
        gateway.finish(ctx, status="client_disconnected", http_status=499)
        raise


async def _chunks(
    gateway: Gateway,
    ctx: RunContext,
    first: Delta,
    events: AsyncGenerator[RunEvent, None],
    writer: ChunkWriter,
    include_usage: bool,
) -> AsyncGenerator[bytes, None]:
    async with aclosing(events):
        yield writer.role()
        yield writer.text(first.text)
        try:
            async for event in events:
                if isinstance(event, Delta):
                    yield writer.text(event.text)
                elif event.error is not None:
                    yield sse(event.error.to_dict())
                    yield DONE
                else:
                    for piece in writer.end(event.outcome, include_usage=include_usage):
                        yield piece
        except Exception:  # boundary: the client gets an error event, the run says error
            log.exception("the use-case stream failed", extra={"run_id": ctx.run_id})
            error = AerodromeError(
                "internal error while streaming; the platform team can find it by the run id"
            )
            gateway.finish(ctx, status="error", http_status=200, error=error)
            yield sse(error.to_dict())
            yield DONE


def completion_stream(
    gateway: Gateway,
    ctx: RunContext,
    first: Delta,
    events: AsyncGenerator[RunEvent, None],
    body: dict[str, Any],
) -> BodyStream:
    """Server-sent chat-completion chunks as the answer arrives (``first`` is its first piece); an
    upstream failure mid-stream is an error event, then ``[DONE]``."""
    opts = body.get("stream_options") or {}
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
    writer = ChunkWriter(ctx.run_id, body["model"])
    return BodyStream(
        _chunks(gateway, ctx, first, events, writer, include_usage),
        ctx.headers(),
        "text/event-stream; charset=utf-8",
    )
