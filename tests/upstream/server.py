"""A local upstream that speaks OpenAI's and Anthropic's wire protocols, with fault injection.

Answers are deterministic: ``Echo: <last user message>`` (or ``Tool result: <content>``
after a tool message); usage is counted in whitespace-separated words. When the request
has tools and the last user message contains "call a tool" (or ``tool_choice`` forces a
tool), the answer is a tool call whose arguments are built from the tool's JSON schema.

Control endpoints (also available as methods of :class:`UpstreamState`):

* ``POST /_control`` with a fault object (or a list of them) — see :class:`Fault`;
* ``POST /_control/reset`` — forget faults, recorded requests and stats;
* ``GET /_requests`` — every API request received (method, path, headers, JSON body);
* ``GET /_stats`` — counters, including ``streams_cancelled`` (the client went away).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from tests.upstream import protocols as p


@dataclasses.dataclass
class Fault:
    """What to do wrong, for the next ``times`` matching requests.

    ``model`` / ``path`` restrict the fault to requests for that upstream model id / path.
    Several effects may be combined (e.g. ``delay_s`` and ``status``).
    """

    status: int | None = None  # answer with this HTTP error status (provider's error shape)
    message: str | None = None  # error message for ``status``
    delay_s: float = 0.0  # sleep before answering
    reset: bool = False  # close the TCP connection without any response
    malformed_sse_after: int | None = None  # K good SSE events, then ``data: {not json``
    reset_after: int | None = None  # K good SSE events, then drop the connection
    slow_stream_s: float = 0.0  # sleep between SSE events
    piece_chars: int | None = None  # stream the answer this many characters a chunk (default: a word)
    omit_usage: bool = False  # no usage in the response / stream
    reply: str | None = None  # answer with this text instead of the echo (non-streamed chat)
    times: int = 1
    model: str | None = None
    path: str | None = None

    def matches(self, path: str, model: str | None) -> bool:
        return (self.model is None or self.model == model) and (self.path is None or self.path == path)


STAT_NAMES = ("requests", "streams_started", "streams_completed", "streams_cancelled", "streams_broken")


class UpstreamState:
    """Faults to inject, requests seen, counters. Thread-safe: tests touch it from their thread."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[dict[str, Any]] = []
        self._stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)

    def add_fault(self, **kw: Any) -> Fault:
        fault = Fault(**kw)  # unknown keys raise TypeError: a typo must not pass silently
        if fault.times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(fault)
        return fault

    def take_fault(self, path: str, model: str | None) -> Fault:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(path, model):
                    fault.times -= 1
                    if fault.times == 0:
                        del self._faults[i]
                    return fault
        return Fault()

    def pending_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dataclasses.asdict(f) for f in self._faults]

    def record(self, request: web.Request, body: Any) -> None:
        entry = {
            "method": request.method,
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        }
        with self._lock:
            self._requests.append(entry)
            self._stats["requests"] += 1

    def bump(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._requests]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._stats = dict.fromkeys(STAT_NAMES, 0)


STATE_KEY = web.AppKey("state", UpstreamState)
MODELS_KEY = web.AppKey("models", tuple)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _openai_error(status: int, message: str, code: str | None = None) -> web.Response:
    kind = {401: "invalid_request_error", 429: "rate_limit_error"}.get(status)
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    headers = {"retry-after": "0"} if status == 429 else None
    return _json({"error": {"message": message, "type": kind, "param": None, "code": code}}, status, headers)


def _anthropic_error(status: int, message: str) -> web.Response:
    kind = p.ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return _json(body, status, {"request-id": "req_mock"})


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _apply_fault(request: web.Request, fault: Fault, anthropic: bool) -> web.StreamResponse | None:
    """Delay, reset or error out as the fault says; ``None`` means answer normally."""
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    if fault.reset:
        _drop_connection(request)
        return web.Response()  # writing it fails quietly: the transport is gone
    if fault.status is not None:
        message = fault.message or f"injected fault: HTTP {fault.status}"
        if anthropic:
            return _anthropic_error(fault.status, message)
        return _openai_error(fault.status, message)
    return None


async def _stream(
    request: web.Request, fault: Fault, events: Iterable[bytes], garbage: bytes
) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    state.bump("streams_started")
    try:
        for i, event in enumerate(events):
            if fault.slow_stream_s and i:
                await asyncio.sleep(fault.slow_stream_s)
            if fault.malformed_sse_after == i:
                await resp.write(garbage)
                state.bump("streams_broken")
                break
            if fault.reset_after == i:
                state.bump("streams_broken")
                transport = request.transport
                if transport is not None:
                    transport.close()  # flushes what was written, then FIN: a truncated body
                return resp
            await resp.write(event)
        else:
            state.bump("streams_completed")
        await resp.write_eof()
    except ConnectionError:  # aiohttp raises ClientConnectionResetError once the client is gone
        state.bump("streams_cancelled")
    except asyncio.CancelledError:
        state.bump("streams_cancelled")
        raise
    return resp


async def _begin(request: web.Request, anthropic: bool) -> tuple[Any, Fault, web.StreamResponse | None]:
    state = request.app[STATE_KEY]
    body = await _read_json(request)
    state.record(request, body)
    if anthropic:
        problem = p.check_anthropic_headers(request.headers, state.api_key)
        if problem is not None:
            return body, Fault(), _anthropic_error(*problem)
    elif state.api_key is not None and request.headers.get("Authorization") != f"Bearer {state.api_key}":
        return body, Fault(), _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
    model = body.get("model") if isinstance(body, dict) else None
    fault = state.take_fault(request.path, model if isinstance(model, str) else None)
    early = await _apply_fault(request, fault, anthropic)
    if early is None and request.method == "POST" and not isinstance(body, dict):
        early = (
            _anthropic_error(400, "request body must be a JSON object")
            if anthropic
            else _openai_error(400, "We could not parse the JSON body of your request.")
        )
    return body, fault, early


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body, fault, early = await _begin(request, anthropic=False)
    if early is not None:
        return early
    problem = p.validate_openai_chat(body)
    if problem is not None:
        return _openai_error(400, problem)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = p.openai_chat_stream(
            body, include_usage=include_usage and not fault.omit_usage, piece_chars=fault.piece_chars
        )
        return await _stream(request, fault, events, b"data: {not json\n\n")
    return _json(p.openai_chat_response(body, omit_usage=fault.omit_usage, reply=fault.reply))


async def embeddings(request: web.Request) -> web.StreamResponse:
    body, fault, early = await _begin(request, anthropic=False)
    if early is not None:
        return early
    result = p.openai_embeddings(body, omit_usage=fault.omit_usage)
    if isinstance(result, str):
        return _openai_error(400, result)
    return _json(result)


async def list_models(request: web.Request) -> web.StreamResponse:
    _, _, early = await _begin(request, anthropic=False)
    if early is not None:
        return early
    return _json(p.openai_models(request.app[MODELS_KEY]))


async def messages(request: web.Request) -> web.StreamResponse:
    body, fault, early = await _begin(request, anthropic=True)
    if early is not None:
        return early
    problem = p.validate_anthropic(body)
    if problem is not None:
        return _anthropic_error(400, problem)
    if body.get("stream"):
        events = p.anthropic_stream(body, omit_usage=fault.omit_usage)
        garbage = b"event: content_block_delta\ndata: {not json\n\n"
        return await _stream(request, fault, events, garbage)
    return _json(p.anthropic_response(body, omit_usage=fault.omit_usage))


async def control(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    data = await _read_json(request)
    try:
        for spec in data if isinstance(data, list) else [data]:
            state.add_fault(**spec)
    except (TypeError, ValueError) as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"faults": state.pending_faults()})


async def control_reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()
    return _json({"ok": True})


async def list_requests(request: web.Request) -> web.StreamResponse:
    return _json(request.app[STATE_KEY].requests())


async def stats(request: web.Request) -> web.StreamResponse:
    return _json(request.app[STATE_KEY].stats())


DEFAULT_MODELS = ("gpt-mock", "claude-mock", "embed-mock")


def create_app(state: UpstreamState, models: Iterable[str] = DEFAULT_MODELS) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    app[MODELS_KEY] = tuple(models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/_control", control)
    app.router.add_post("/_control/reset", control_reset)
    app.router.add_get("/_requests", list_requests)
    app.router.add_get("/_stats", stats)
    return app
