"""OpenTelemetry: each gateway call reaches a real OTLP/HTTP receiver as a span with GenAI attributes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.gateway.helpers import chat_body
from tests.harness import base_config, free_port, run_gateway
from tests.upstream.fixtures import UpstreamServer


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: decodes every export into plain spans."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _traces(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        export = ExportTraceServiceRequest.FromString(await request.read())
        for rs in export.resource_spans:
            self.resources.append({a.key: _value(a.value) for a in rs.resource.attributes})
            for ss in rs.scope_spans:
                for span in ss.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "kind": span.kind,
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "status": span.status.code,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                        }
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def __enter__(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_gateway_calls_become_genai_spans_at_the_otlp_endpoint(
    upstream: UpstreamServer, tmp_path: Path, receiver: Receiver
) -> None:
    cfg = base_config(
        upstream.url,
        db_url=f"sqlite:///{tmp_path}/t.db",
        telemetry={"otlp_endpoint": receiver.url, "service_name": "aerodrome-test"},
    )
    with run_gateway(cfg, tmp_path) as gw:
        key = gw.make_key("hr")
        with gw.client(key) as c:
            ok = c.post("/v1/chat/completions", json=chat_body())
            assert ok.status_code == 200
            upstream.fault(status=500, times=4)
            failed = c.post("/v1/chat/completions", json=chat_body())
            assert failed.status_code == 502
    # leaving the server flushed the batch processor
    assert receiver.content_types and set(receiver.content_types) == {"application/x-protobuf"}
    assert receiver.resources[0]["service.name"] == "aerodrome-test"
    by_run = {s["attributes"]["aerodrome.run_id"]: s for s in receiver.spans}
    span = by_run[ok.headers["x-aerodrome-run-id"]]
    attrs = span["attributes"]
    assert span["name"] == "chat chat-small" and span["kind"] == 3  # SPAN_KIND_CLIENT
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "chat-small"
    assert attrs["gen_ai.response.model"]
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["aerodrome.department"] == "hr" and attrs["aerodrome.deployment"] == "mock-a"
    assert span["end"] > span["start"]
    bad = by_run[failed.headers["x-aerodrome-run-id"]]
    assert bad["status"] == 2 and bad["attributes"]["error.type"] == "upstream_500"  # STATUS_CODE_ERROR


def test_without_an_endpoint_no_tracer_is_built(gateway: Any) -> None:
    assert gateway.runtime.tracer is None and gateway.runtime.gateway.tracer is None
