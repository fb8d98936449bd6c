"""OpenAI-compatible routes: thin handlers around the pipeline."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from aerodrome.audit import trail
from aerodrome.errors import AerodromeError, BadRequest
from aerodrome.gateway import usecase_stream
from aerodrome.gateway.pipeline import Gateway
from aerodrome.gateway.request import parse_json_object, read_body, validate_chat, validate_embeddings
from aerodrome.gateway.run_context import RunContext
from aerodrome.gateway.streaming import SSEResponse
from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime
from aerodrome.usecases import chat as usecase_chat
from aerodrome.usecases.runner import Outcome
from aerodrome.usecases.streaming import Finished, RunEvent

router = APIRouter(tags=["gateway"])
T = TypeVar("T")
WATCH_AFTER_S = 0.05
log = logging.getLogger("aerodrome.gateway")

_CHAT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "messages"],
                    "properties": {
                        "model": {"type": "string", "description": "a catalog alias, e.g. chat-small"},
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "stream": {"type": "boolean"},
                        "stream_options": {"type": "object"},
                        "max_tokens": {"type": "integer"},
                        "temperature": {"type": "number"},
                        "tools": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}
_EMB_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "input"],
                    "properties": {
                        "model": {"type": "string"},
                        "input": {
                            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                        },
                        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                    },
                }
            }
        },
    }
}


def _json(data: dict[str, Any], headers: dict[str, str], status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _error(exc: AerodromeError, ctx: RunContext) -> Response:
    return _json(exc.to_dict(), {**ctx.headers(), **exc.headers}, exc.status)


def _refused(gw: Gateway, ctx: RunContext, exc: Exception) -> Response:
    """Record the run of a failed request and answer with the error."""
    if not isinstance(exc, AerodromeError):
        log.exception(
            "unhandled error in the gateway", extra={"run_id": ctx.run_id, "request_id": ctx.request_id}
        )
        exc = AerodromeError("internal error; the platform team can find it in the logs by the run id")
    gw.finish(
        ctx, status="rejected" if not ctx.attempts.count else "error", http_status=exc.status, error=exc
    )
    return _error(exc, ctx)


def request_id(request: Request) -> str:
    """The client's x-request-id (printable ASCII, at most 64 characters, as stored), or a new one."""
    given = request.headers.get("x-request-id", "")
    given = "".join(ch for ch in given if " " < ch <= "~")[:64]
    return given or uuid.uuid4().hex


def _context(request: Request, endpoint: str) -> RunContext:
    ctx = RunContext(endpoint=endpoint, request_id=request_id(request))
    ctx.cache_bypass = request.headers.get("x-aerodrome-cache", "").strip().lower() == "bypass"
    request.state.run_id = ctx.run_id
    return ctx


async def _start(request: Request, rt: Runtime, ctx: RunContext) -> dict[str, Any]:
    """Authenticate (onto ``ctx``, so a later refusal is still recorded for the caller), read the body."""
    ctx.principal = await rt.authenticator.authenticate(request.headers.get("authorization"))
    raw = await read_body(
        request.stream(), request.headers.get("content-length"), rt.config.server.max_body_bytes
    )
    return parse_json_object(raw)


class _ClientGone(Exception):
    """The client closed the connection while the upstream call was in flight."""


async def _disconnected(receive: Any) -> None:
    # The body has been read: the next message can only be the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """Await the upstream work in this task, cancelling it at once if the client disconnects meanwhile.

    The work stays in the handler's own task (aiohttp ties its read timeouts to the task that
    opened the response, and a stream is read on by the same task afterwards); a watcher task
    cancels this one when the disconnect arrives.
    """
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(request.receive)
        gone = True
        current.cancel()

    # Most answers that come back within WATCH_AFTER_S never need a watcher: start it only then,
    # which keeps the fast path free of an extra task per request.
    watcher: asyncio.Task[None] | None = None

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            current.uncancel()  # our own cancellation: turn it into a recorded disconnect
            raise _ClientGone from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


def _declared_class(request: Request) -> str | None:
    value = request.headers.get("x-aerodrome-data-class")
    return value.strip().lower() if value else None


async def _audit_refusal(rt: Runtime, ctx: RunContext, exc: Exception) -> None:
    """A request refused because its data may not go to the model is an audit event."""
    if not isinstance(exc, AerodromeError) or exc.code != "data_class_exceeds_model":
        return
    principal = ctx.principal
    details = {
        "model": ctx.model,
        "data_class": ctx.data_class,
        "department": principal.department_id if principal else None,
        "usecase_id": ctx.usecase_id,
        "spec_version": ctx.spec_version,
        "reason": exc.message[:300],
    }

    def write() -> None:
        with rt.engine.begin() as conn:
            trail.record(
                conn,
                actor=principal.name if principal else "anonymous",
                action="request.refused_data_class",
                object_type="run",
                object_id=ctx.run_id,
                details=details,
            )

    try:
        await asyncio.to_thread(write)
    except Exception:  # boundary: the refusal stands and is in the run record even if the audit write fails
        log.exception("could not write the audit event of a data-class refusal", extra={"run_id": ctx.run_id})


def _usecase_answer(rt: Runtime, ctx: RunContext, outcome: Outcome, body: dict[str, Any] | None) -> Response:
    """Record the run, then answer: the run object, or a chat completion (streamed when asked)."""
    usecase_stream.record(rt.gateway, ctx, outcome)
    if body is None:
        return _json(outcome.to_dict(), ctx.headers())
    model = body["model"]
    if body.get("stream"):
        opts = body.get("stream_options") or {}
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        return StreamingResponse(
            iter(list(usecase_chat.completion_chunks(outcome, model, include_usage=include_usage))),
            media_type="text/event-stream",
            headers={**ctx.headers(), "cache-control": "no-cache"},
        )
    return _json(usecase_chat.completion(outcome, model), ctx.headers())


async def _usecase_stream(
    request: Request, rt: Runtime, ctx: RunContext, usecase_id: str, inputs: Any, body: dict[str, Any]
) -> Response:
    """``stream: true`` on a use case: chunks as the model writes, when the use case may stream;
    else (or when it answered without text: a fallback) the finished answer, as chunks."""
    assert ctx.principal is not None
    events = usecase_stream.recorded(
        rt.gateway,
        ctx,
        rt.usecase_runner.stream(
            ctx, ctx.principal, usecase_id, inputs, declared_class=_declared_class(request)
        ),
    )
    first = await _unless_client_leaves(request, anext(events))
    if isinstance(first, Finished):
        await events.aclose()
        return _usecase_answer(rt, ctx, first.outcome, body)
    return usecase_stream.completion_stream(rt.gateway, ctx, first, events, body)


async def _call(request: Request, endpoint: str, usecase_id: str | None = None) -> Response:
    """One gateway call, from the body to the answer; every outcome gets exactly one run record."""
    rt: Runtime = request.app.state.runtime
    gw = rt.gateway
    ctx = _context(request, endpoint)
    try:
        body = await _start(request, rt, ctx)
        assert ctx.principal is not None
        if endpoint == "usecase":
            assert usecase_id is not None
            unknown = sorted(set(body) - {"inputs"})
            if unknown:
                raise BadRequest(
                    f'unknown field {unknown[0]!r}; the body is {{"inputs": {{...}}}}', param=unknown[0]
                )
            outcome = await _unless_client_leaves(
                request,
                rt.usecase_runner.run(
                    ctx,
                    ctx.principal,
                    usecase_id,
                    body.get("inputs"),
                    declared_class=_declared_class(request),
                ),
            )
            return _usecase_answer(rt, ctx, outcome, None)
        if endpoint == "chat":
            validate_chat(body)
            chat_usecase = usecase_chat.usecase_id_of(body["model"])
            if chat_usecase is not None:
                ctx.endpoint = "usecase"
                inputs = usecase_chat.inputs_from_chat(rt.usecases.get(chat_usecase).spec, body)
                if body.get("stream"):
                    return await _usecase_stream(request, rt, ctx, chat_usecase, inputs, body)
                outcome = await _unless_client_leaves(
                    request,
                    rt.usecase_runner.run(
                        ctx, ctx.principal, chat_usecase, inputs, declared_class=_declared_class(request)
                    ),
                )
                return _usecase_answer(rt, ctx, outcome, body)
            await gw.admit(ctx, ctx.principal, body, kind="chat", declared_class=_declared_class(request))
            if body.get("stream"):
                opened = await _unless_client_leaves(request, gw.open_stream(ctx, body))
                return SSEResponse(gw, ctx, opened, ctx.headers())
            result = await _unless_client_leaves(request, gw.chat(ctx, body))
        else:
            validate_embeddings(body)
            await gw.admit(
                ctx, ctx.principal, body, kind="embeddings", declared_class=_declared_class(request)
            )
            result = await _unless_client_leaves(request, gw.embeddings(ctx, body))
    except _ClientGone:  # nobody to answer: record it, free the reservation
        gw.finish(ctx, status="client_disconnected", http_status=499)
        return Response(status_code=499)
    except asyncio.CancelledError:  # the server is stopping under us: still one record, reservation freed
        gw.finish(ctx, status="client_disconnected", http_status=499)
        raise
    except Exception as exc:  # boundary: every request gets its run record and an OpenAI-shaped answer
        await _audit_refusal(rt, ctx, exc)
        return _refused(gw, ctx, exc)
    gw.finish(
        ctx, status="ok", http_status=200, response=result, output_text="" if endpoint != "chat" else None
    )
    return _json(result, ctx.headers())


async def stream_usecase_as(
    request: Request, principal: Principal, usecase_id: str, inputs: Any
) -> AsyncGenerator[RunEvent, None]:
    """The use-case path for a caller signed in another way (the console's session), streamed: the
    same runner, admission and guardrails, exactly one run record; the run's events (deltas as the
    model writes, when the use case may stream, then the outcome); errors are recorded, then
    raised as :class:`AerodromeError`."""
    rt: Runtime = request.app.state.runtime
    gw = rt.gateway
    ctx = _context(request, "usecase")
    ctx.principal = principal
    try:
        events = usecase_stream.recorded(
            gw, ctx, rt.usecase_runner.stream(ctx, principal, usecase_id, inputs)
        )
        async with aclosing(events):
            async for event in events:
                yield event
    except Exception as exc:  # boundary: record the run, then let the page show the error
        await _audit_refusal(rt, ctx, exc)
        _refused(gw, ctx, exc)
        if isinstance(exc, AerodromeError):
            raise
        raise AerodromeError(
            "internal error; the platform team can find it in the logs by the run id"
        ) from exc


@router.post(
    "/v1/chat/completions",
    openapi_extra=_CHAT_DOC,
    summary="Create a chat completion (OpenAI-compatible)",
    response_model=None,
)
async def chat_completions(request: Request) -> Response:
    return await _call(request, "chat")


@router.post(
    "/v1/embeddings",
    openapi_extra=_EMB_DOC,
    summary="Create embeddings (OpenAI-compatible)",
    response_model=None,
)
async def embeddings(request: Request) -> Response:
    return await _call(request, "embeddings")


@router.post(
    "/v1/usecases/{usecase_id}/run",
    summary="Run a use case with its inputs: output, citations, run id, review status",
    response_model=None,
)
async def run_usecase(usecase_id: str, request: Request) -> Response:
    return await _call(request, "usecase", usecase_id)


@router.get("/v1/models", summary="List the models your key may use (OpenAI-compatible)")
async def list_models(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    principal = await rt.authenticator.authenticate(request.headers.get("authorization"))
    catalog = rt.catalog
    created = int(rt.started_at)
    data = []
    for resolved in catalog.visible_aliases(principal):
        first = resolved.deployments[0]
        data.append(
            {
                "id": resolved.name,
                "object": "model",
                "created": created,
                "owned_by": "aerodrome",
                "aerodrome": {
                    "kind": catalog.alias_kind(resolved),
                    "deployments": [d.name for d in resolved.deployments],
                    "status": first.status,
                    "max_data_class": min(
                        (d.max_data_class for d in resolved.deployments),
                        key=lambda c: ["public", "internal", "confidential", "restricted"].index(c),
                    ),
                    "context_window": min(d.context_window for d in resolved.deployments),
                    "warnings": list(resolved.warnings),
                },
            }
        )
    return _json({"object": "list", "data": data}, {"x-request-id": request_id(request)})
