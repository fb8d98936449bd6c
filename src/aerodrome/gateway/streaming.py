"""Server-sent events to the client, with disconnect detection and one run record.

A plain ASGI response: it listens for ``http.disconnect`` while it streams, so
a client that goes away cancels the upstream call at once (the provider's
connection is closed) and the run is recorded as ``client_disconnected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response

from aerodrome.errors import AerodromeError
from aerodrome.gateway.pipeline import Gateway, delta_text, usage_from
from aerodrome.gateway.run_context import RunContext
from aerodrome.routing.router import OpenStream

log = logging.getLogger("aerodrome.gateway")
_DONE = b"data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class ListeningResponse(Response):
    """A streamed answer that listens for ``http.disconnect`` meanwhile: when the client goes away,
    the streaming task is cancelled at once (closing the upstream, recording the run)."""

    media_type = "text/event-stream; charset=utf-8"

    def __init__(self, headers: dict[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self._extra_headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        given = {"content-type": self.media_type, "cache-control": "no-cache", "x-accel-buffering": "no"}
        given.update(self._extra_headers)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in given.items()]
        streamer = asyncio.ensure_future(self._stream(send, headers))
        listener = asyncio.ensure_future(self._listen(receive))
        done, _ = await asyncio.wait({streamer, listener}, return_when=asyncio.FIRST_COMPLETED)
        if listener in done and not streamer.done():
            streamer.cancel()  # the client went away: stop, close the upstream, record it
        else:
            listener.cancel()
        for task in (streamer, listener):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, receive: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    async def _stream(self, send: Any, headers: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError


class BodyStream(ListeningResponse):
    """Sends what an async iterator of bytes yields, as it yields it; the iterator is closed at the
    end, also when the client went away (its ``finally`` records the run)."""

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str], media_type: str) -> None:
        super().__init__(headers)
        self._body = body
        self.media_type = media_type

    async def _stream(self, send: Any, headers: list[tuple[bytes, bytes]]) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for piece in self._body:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            close = getattr(self._body, "aclose", None)
            if close is not None:
                await close()


class SSEResponse(ListeningResponse):
    """A model's stream relayed to the client (chat completions), with its one run record."""

    def __init__(
        self, gateway: Gateway, ctx: RunContext, opened: OpenStream, headers: dict[str, str]
    ) -> None:
        super().__init__(headers)
        self._gateway = gateway
        self._ctx = ctx
        self._opened = opened

    async def _stream(self, send: Any, headers: list[tuple[bytes, bytes]]) -> None:
        ctx, gateway = self._ctx, self._gateway
        opened = self._opened
        usage: tuple[int, int] | None = None
        pieces: list[str] = []
        status, error = "ok", None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            chunk: dict[str, Any] | None = opened.first
            stream = opened.rest
            while chunk is not None:
                found = usage_from(chunk)
                if found is not None:
                    usage = found
                choices = chunk.get("choices")
                if choices:
                    pieces.append(delta_text(chunk))
                    if "usage" in chunk and not ctx.include_usage:  # the client did not ask for usage
                        chunk = {k: v for k, v in chunk.items() if k != "usage"}
                    await send({"type": "http.response.body", "body": _event(chunk), "more_body": True})
                elif found is None or ctx.include_usage:
                    await send({"type": "http.response.body", "body": _event(chunk), "more_body": True})
                chunk = await anext(stream, None)
            await send({"type": "http.response.body", "body": _DONE, "more_body": False})
        except asyncio.CancelledError:
            status = "client_disconnected"
            raise
        except Exception as exc:  # boundary: the client gets an error event, the run says error
            if not isinstance(exc, AerodromeError):
                log.exception("the stream failed", extra={"run_id": ctx.run_id})
                exc = AerodromeError(
                    "internal error while streaming; the platform team can find it by the run id"
                )
            status, error = "error", exc
            await send({"type": "http.response.body", "body": _event(exc.to_dict()), "more_body": True})
            await send({"type": "http.response.body", "body": _DONE, "more_body": False})
        finally:
            try:
                await opened.rest.aclose()  # type: ignore[attr-defined]
            except Exception:  # boundary: a failing close must not lose the run record
                log.exception("closing the upstream stream failed", extra={"run_id": ctx.run_id})
            text = "".join(pieces)
            gateway.finish(
                ctx,
                status=status,
                http_status=200 if status != "client_disconnected" else 499,
                error=error,
                usage=usage,
                output_text=text,
            )
