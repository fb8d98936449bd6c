"""Streams that break after the first chunk, and clients that go away mid-stream."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.gateway.helpers import chat_body, sse_events
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"
LONG = "one two three four five six seven eight nine ten"


def _stream(gateway: Gateway, body: dict[str, object]) -> tuple[httpx.Response, list[object]]:
    key = gateway.make_key("hr")
    with gateway.client(key) as c, c.stream("POST", URL, json=body) as r:
        events = sse_events(r)
    return r, events


@pytest.mark.parametrize("fault", [{"malformed_sse_after": 3}, {"reset_after": 3}])
def test_a_stream_broken_mid_way_ends_with_an_sse_error_event(
    gateway: Gateway, upstream: UpstreamServer, fault: dict[str, int]
) -> None:
    upstream.fault(**fault)
    r, events = _stream(gateway, chat_body(content=LONG, stream=True))
    assert r.status_code == 200
    chunks = [e for e in events if isinstance(e, dict) and "choices" in e]
    assert len(chunks) == 3  # what the client already had stays delivered
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1
    err = errors[0]["error"]
    assert set(err) == {"message", "type", "param", "code"}
    expected = (
        "malformed_stream" if "malformed_sse_after" in fault else ("truncated_stream", "upstream_connection")
    )
    assert err["code"] in expected
    assert events.index(errors[0]) > max(events.index(c) for c in chunks)
    assert upstream.stats()["requests"] == 1  # never retried once the client has data
    runs = gateway.runs()
    assert len(runs) == 1
    run = runs[0]
    assert run["id"] == r.headers["x-aerodrome-run-id"]
    assert run["status"] == "error"
    assert run["error_code"] == err["code"]
    assert run["stream"] is True


def test_client_disconnect_cancels_the_upstream_and_records_one_run(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    upstream.fault(slow_stream_s=0.3)
    key = gateway.make_key("hr")
    with gateway.client(key) as c, c.stream("POST", URL, json=chat_body(content=LONG, stream=True)) as r:
        assert r.status_code == 200
        run_id = r.headers["x-aerodrome-run-id"]
        first = next(r.iter_lines())
        assert first.startswith("data: ")
    # the response is closed: the gateway must drop the upstream call
    assert upstream.wait_for(lambda s: s["streams_cancelled"] >= 1, timeout=5), upstream.stats()
    assert upstream.stats()["streams_completed"] == 0
    deadline = time.monotonic() + 5
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        runs = gateway.runs()
        if runs:
            break
        time.sleep(0.05)
    assert len(runs) == 1, runs
    assert runs[0]["id"] == run_id
    assert runs[0]["status"] == "client_disconnected"
    assert runs[0]["stream"] is True
    time.sleep(0.3)
    assert len(gateway.runs()) == 1  # and never a second record


def test_a_stream_without_usage_gets_estimated_tokens(gateway: Gateway, upstream: UpstreamServer) -> None:
    upstream.fault(omit_usage=True)
    _, events = _stream(gateway, chat_body(content=LONG, stream=True, stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    run = gateway.runs()[0]
    assert run["status"] == "ok"
    assert run["tokens_estimated"] is True
    assert run["prompt_tokens"] > 0 and run["completion_tokens"] > 0


class _Broken:
    """Wraps a provider: streams break with a plain exception after two chunks; chat raises one at once."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.kind = "openai"

    async def chat(self, deployment: object, body: dict[str, object]) -> dict[str, object]:
        raise KeyError("a bug in a provider")

    async def chat_stream(self, deployment: object, body: dict[str, object]):  # type: ignore[no-untyped-def]
        count = 0
        async for chunk in self.inner.chat_stream(deployment, body):  # type: ignore[attr-defined]
            if count == 2:
                raise KeyError("a bug in a provider")
            count += 1
            yield chunk

    async def embeddings(self, deployment: object, body: dict[str, object]) -> dict[str, object]:
        raise KeyError("a bug")

    async def aclose(self) -> None:
        return None


def test_an_unexpected_failure_still_answers_in_shape_and_records_one_run(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    rt = gateway.runtime
    original = rt.providers["mock"]
    rt.providers = {**rt.providers, "mock": _Broken(original)}  # type: ignore[dict-item]
    try:
        key = gateway.make_key("hr")
        with gateway.client(key) as c:
            r = c.post(URL, json=chat_body())
            with c.stream("POST", URL, json=chat_body(content=LONG, stream=True)) as s:
                events = sse_events(s)
    finally:
        rt.providers = {**rt.providers, "mock": original}
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error" and "x-aerodrome-run-id" in r.headers
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "internal_error"
    runs = {run["id"]: run for run in gateway.runs()}
    assert len(runs) == 2
    assert runs[r.headers["x-aerodrome-run-id"]]["status"] == "error"
    assert runs[s.headers["x-aerodrome-run-id"]]["status"] == "error"
