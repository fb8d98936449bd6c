"""Cost of OpenTelemetry on the request path: microseconds per gateway call to build and end its span.

    python bench/tracing.py [--calls 20000]

Method: a RunTracer exporting to a local OTLP/HTTP sink (aiohttp on 127.0.0.1, accepting and
discarding /v1/traces) records --calls run records shaped like the gateway's, in bursts of 500
with 50 ms between them; the time of the ``record`` calls alone is what the request path pays
(it queues the record: the tracer thread builds the span, the BatchSpanProcessor's thread
exports it; spans beyond their queues are dropped, never waited for). Without
``telemetry.otlp_endpoint`` the gateway holds no tracer and pays one ``is None`` test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from aiohttp import web

from aerodrome.config import DeploymentConfig, ProviderConfig, TelemetryConfig
from aerodrome.monitoring.tracing import RunTracer


def sink() -> tuple[str, list[int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    posts: list[int] = []

    async def traces(request: web.Request) -> web.Response:
        posts.append(len(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    time.sleep(0.5)
    return f"http://127.0.0.1:{port}", posts


def record() -> dict:
    return {
        "id": uuid.uuid4().hex,
        "request_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC),
        "endpoint": "chat",
        "principal": "user@example.com",
        "department_id": "hr",
        "use_case_id": None,
        "spec_version": None,
        "alias": "chat-small",
        "deployment": "mock-a",
        "status": "ok",
        "error_code": None,
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "cost_usd": 0.0003,
        "latency_ms": 400.0,
        "attempts": 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20_000)
    args = ap.parse_args()
    url, posts = sink()
    tracer = RunTracer(TelemetryConfig(otlp_endpoint=url))
    dep = DeploymentConfig(name="mock-a", provider="mock", model="gpt-mock")
    prov = ProviderConfig(name="mock", kind="openai", base_url="http://127.0.0.1:9/v1")
    records = [record() for _ in range(args.calls)]
    per_call = []
    for chunk in range(0, args.calls, 500):  # 500 calls, then let the exporter catch up, like a server
        start = time.perf_counter()
        for r in records[chunk : chunk + 500]:
            tracer.record(
                r, requested_model="chat-small", response_model="gpt-mock", deployment=dep, provider=prov
            )
        per_call.append((time.perf_counter() - start) / 500 * 1e6)
        time.sleep(0.05)
    tracer.close()
    none_start = time.perf_counter()
    nothing = None
    for _ in range(args.calls):
        if nothing is not None:
            raise AssertionError
    none_us = (time.perf_counter() - none_start) / args.calls * 1e6
    print(
        f"span per gateway call: median {statistics.median(per_call):.1f} µs, "
        f"max of 500-call chunks {max(per_call):.1f} µs; exported in {len(posts)} batches "
        f"({sum(posts) / 1e6:.1f} MB); not configured: {none_us:.3f} µs"
    )


if __name__ == "__main__":
    main()
