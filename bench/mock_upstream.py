"""Fast OpenAI-compatible mock upstream for the gateway benchmark.

A raw asyncio Protocol (on uvloop when it is importable) with a minimal
HTTP/1.1 parser: keep-alive, pipelining, Content-Length and chunked request
bodies.  It answers:

* ``POST /v1/chat/completions`` -> a small fixed ``chat.completion`` JSON with
  ``usage``; with ``"stream": true`` an SSE stream (chunked transfer encoding)
  of 10 small content chunks, a usage chunk and ``data: [DONE]``.
* ``GET /v1/models`` -> one model.
* anything else -> 404 JSON.

It is deliberately dumb so that it is never the bottleneck: every response is
pre-rendered at start-up.  Run it pinned to its own core, e.g.

    taskset -c 1 python bench/mock_upstream.py --port 18080
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time

MODEL = "mock-model-2024"
CREATED = int(time.time())

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-mock0000000000000000000000",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_mock",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! This is the mock upstream."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19},
    },
    separators=(",", ":"),
).encode()

_STREAM_WORDS = ["Hello", "!", " This", " is", " the", " mock", " upstream", " speaking", " to", " you", "."]


def _sse_body() -> bytes:
    base = {
        "id": "chatcmpl-mock0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_mock",
    }
    events = []
    first = dict(
        base,
        choices=[
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    )
    events.append(first)
    for w in _STREAM_WORDS[:9]:
        events.append(
            dict(
                base, choices=[{"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}]
            )
        )
    events.append(dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    events.append(
        dict(base, choices=[], usage={"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19})
    )
    out = bytearray()
    for ev in events:
        data = b"data: " + json.dumps(ev, separators=(",", ":")).encode() + b"\n\n"
        out += b"%x\r\n%s\r\n" % (len(data), data)
    done = b"data: [DONE]\n\n"
    out += b"%x\r\n%s\r\n" % (len(done), done)
    out += b"0\r\n\r\n"
    return bytes(out)


def _response(status: str, ctype: bytes, body: bytes, close: bool = False) -> bytes:
    conn = b"close" if close else b"keep-alive"
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"Content-Type: " + ctype + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: " + conn + b"\r\n"
        b"x-request-id: mock\r\n"
        b"\r\n" + body
    )


RESP_JSON = _response("200 OK", b"application/json", _COMPLETION)
RESP_STREAM = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n" + _sse_body()
)
RESP_MODELS = _response(
    "200 OK",
    b"application/json",
    json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "mock"}]}
    ).encode(),
)
RESP_404 = _response(
    "404 Not Found", b"application/json", b'{"error":{"message":"not found","type":"invalid_request_error"}}'
)
RESP_400 = _response(
    "400 Bad Request", b"application/json", b'{"error":{"message":"bad request"}}', close=True
)

_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')


class MockProtocol(asyncio.Protocol):
    __slots__ = ("buf", "transport")

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            hend = buf.find(b"\r\n\r\n")
            if hend < 0:
                break
            head = buf[:hend]
            line_end = head.find(b"\r\n")
            reqline = head if line_end < 0 else head[:line_end]
            lower = head.lower()
            body_start = hend + 4
            # request body
            i = lower.find(b"\ncontent-length:")
            if i >= 0:
                j = lower.find(b"\r\n", i + 1)
                try:
                    n = int(head[i + 16 : j if j >= 0 else len(head)].strip())
                except ValueError:
                    self.transport.write(RESP_400)
                    self.transport.close()
                    return
                if len(buf) < body_start + n:
                    break
                body = buf[body_start : body_start + n]
                rest = buf[body_start + n :]
            elif b"\ntransfer-encoding: chunked" in lower or b"\ntransfer-encoding:chunked" in lower:
                pos = body_start
                parts = []
                complete = False
                while True:
                    le = buf.find(b"\r\n", pos)
                    if le < 0:
                        break
                    size = int(buf[pos:le].split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        te = buf.find(b"\r\n\r\n", le)  # end of (possibly empty) trailers
                        if buf[le : le + 4] == b"\r\n\r\n":
                            te = le
                        if te < 0:
                            break
                        pos = te + 4
                        complete = True
                        break
                    if len(buf) < le + 2 + size + 2:
                        break
                    parts.append(buf[le + 2 : le + 2 + size])
                    pos = le + 2 + size + 2
                if not complete:
                    break
                body = b"".join(parts)
                rest = buf[pos:]
            else:
                body = b""
                rest = buf[body_start:]
            buf = rest
            if b"100-continue" in lower:
                out.append(b"HTTP/1.1 100 Continue\r\n\r\n")
            if reqline.startswith(b"POST ") and b"/chat/completions" in reqline:
                out.append(RESP_STREAM if _STREAM_RE.search(body) else RESP_JSON)
            elif reqline.startswith(b"GET ") and b"/models" in reqline:
                out.append(RESP_MODELS)
            else:
                out.append(RESP_404)
        self.buf = buf
        if out:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])

    def connection_lost(self, exc):  # type: ignore[override]
        self.buf = b""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    loop_kind = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop  # type: ignore

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            loop_kind = "uvloop"
        except ImportError:
            pass

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            MockProtocol, args.host, args.port, backlog=1024, reuse_address=True
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"mock upstream on http://{args.host}:{args.port} ({loop_kind}, pid {os.getpid()})", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
