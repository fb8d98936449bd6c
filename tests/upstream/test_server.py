"""The mock upstream speaks the real protocols: the official openai SDK accepts it as OpenAI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import openai
import pytest

from tests.upstream.fixtures import UPSTREAM_KEY, UpstreamServer
from tests.upstream.protocols import embedding_vector

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(upstream: UpstreamServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.url, api_key="sk-anything", max_retries=0, timeout=5) as c:
        yield c


def test_chat_completion(client: openai.OpenAI, upstream: UpstreamServer) -> None:
    out = client.chat.completions.create(
        model="gpt-mock",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there world"},
        ],
    )
    assert out.object == "chat.completion"
    assert out.model == "gpt-mock"
    assert out.choices[0].message.content == "Echo: hello there world"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (5, 4, 9)
    [seen] = upstream.requests()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == "Bearer sk-anything"
    assert seen["body"]["messages"][1]["content"] == "hello there world"


def test_chat_max_tokens_truncates_with_length(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="gpt-mock", messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
    )
    assert out.choices[0].message.content == "Echo: one"
    assert out.choices[0].finish_reason == "length"


def test_stream_with_include_usage(client: openai.OpenAI, upstream: UpstreamServer) -> None:
    stream = client.chat.completions.create(
        model="gpt-mock",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert upstream.stats()["streams_completed"] == 1


def test_a_stream_can_come_a_few_characters_a_chunk(client: openai.OpenAI, upstream: UpstreamServer) -> None:
    upstream.fault(piece_chars=3)
    chunks = list(
        client.chat.completions.create(
            model="gpt-mock", messages=[{"role": "user", "content": "stream me please"}], stream=True
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "Echo: stream me please"
    assert all(len(p) <= 3 for p in pieces) and len(pieces) == 8


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-mock", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_call(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="gpt-mock",
        messages=[{"role": "user", "content": "please call a tool for Paris"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert args == {"city": "please call a tool for Paris", "days": 1}
    # Sending the tool result back yields an answer built from it.
    follow = client.chat.completions.create(
        model="gpt-mock",
        messages=[
            {"role": "user", "content": "please call a tool for Paris"},
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny 21C"},
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert follow.choices[0].message.content == "Tool result: sunny 21C"


def test_tool_call_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-mock",
        messages=[{"role": "user", "content": "call a tool"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    name, args, ids, finish = "", "", set(), None
    for chunk in stream:
        choice = chunk.choices[0]  # type: ignore[union-attr]
        for tc in choice.delta.tool_calls or []:
            assert tc.index == 0
            if tc.id:
                ids.add(tc.id)
            name += (tc.function and tc.function.name) or ""
            args += (tc.function and tc.function.arguments) or ""
        finish = choice.finish_reason or finish
    assert name == "get_weather" and len(ids) == 1 and finish == "tool_calls"
    assert json.loads(args) == {"city": "call a tool", "days": 1}


def test_embeddings_float_and_base64(client: openai.OpenAI, upstream: UpstreamServer) -> None:
    # The SDK asks for base64 by default and decodes it; both encodings carry the same vector.
    out = client.embeddings.create(model="embed-mock", input=["alpha beta", "gamma"])
    floats = client.embeddings.create(model="embed-mock", input="alpha beta", encoding_format="float")
    assert [d.index for d in out.data] == [0, 1]
    assert len(out.data[0].embedding) == 8
    assert out.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    assert out.data[0].embedding == pytest.approx(embedding_vector("alpha beta"), rel=1e-6)
    assert out.data[0].embedding != pytest.approx(out.data[1].embedding)
    assert out.usage.prompt_tokens == 3
    assert upstream.requests()[0]["body"]["encoding_format"] == "base64"


def test_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["gpt-mock", "claude-mock", "embed-mock"]


def test_openai_key_is_checked(upstream_keyed: UpstreamServer) -> None:
    with (
        openai.OpenAI(base_url=upstream_keyed.url, api_key="sk-wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.models.list()
    with openai.OpenAI(base_url=upstream_keyed.url, api_key=UPSTREAM_KEY, max_retries=0) as good:
        assert len(good.models.list().data) == 3


def test_status_faults_count_down_and_target_models(client: openai.OpenAI, upstream: UpstreamServer) -> None:
    upstream.fault(status=503, times=2, model="gpt-other")
    upstream.fault(status=429)
    msgs: Any = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-mock", messages=msgs)
    assert client.chat.completions.create(model="gpt-mock", messages=msgs).choices[0].message.content
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gpt-other", messages=msgs)
        assert info.value.status_code == 503
    assert client.chat.completions.create(model="gpt-other", messages=msgs).choices
    assert upstream.state.pending_faults() == []


def test_delay_reset_and_omit_usage(upstream: UpstreamServer) -> None:
    msgs: Any = [{"role": "user", "content": "x"}]
    with openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0, timeout=0.2) as fast:
        upstream.fault(delay_s=1.0)
        with pytest.raises(openai.APITimeoutError):
            fast.chat.completions.create(model="gpt-mock", messages=msgs)
        upstream.fault(reset=True)
        with pytest.raises(openai.APIConnectionError):
            fast.chat.completions.create(model="gpt-mock", messages=msgs)
        upstream.fault(omit_usage=True)
        assert fast.chat.completions.create(model="gpt-mock", messages=msgs).usage is None


def _raw_stream(url: str, body: dict[str, Any]) -> tuple[list[str], str | None]:
    """POST a stream with aiohttp; returns the SSE lines received and the error, if any."""

    async def run() -> tuple[list[str], str | None]:
        lines: list[str] = []
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
            try:
                async for raw in resp.content:
                    if raw.strip():
                        lines.append(raw.decode().strip())
            except aiohttp.ClientPayloadError as exc:
                return lines, type(exc).__name__
        return lines, None

    return asyncio.run(run())


def test_malformed_and_reset_streams(upstream: UpstreamServer) -> None:
    body = {"model": "gpt-mock", "messages": [{"role": "user", "content": "a b c d"}], "stream": True}
    upstream.fault(malformed_sse_after=2)
    lines, error = _raw_stream(upstream.url + "/chat/completions", body)
    assert error is None and len(lines) == 3
    assert lines[-1] == "data: {not json"
    json.loads(lines[1].removeprefix("data: "))
    upstream.fault(reset_after=3)
    lines, error = _raw_stream(upstream.url + "/chat/completions", body)
    assert len(lines) == 3 and error == "ClientPayloadError"
    assert upstream.stats()["streams_broken"] == 2


def test_client_disconnect_is_counted(client: openai.OpenAI, upstream: UpstreamServer) -> None:
    upstream.fault(slow_stream_s=0.05)
    stream = client.chat.completions.create(
        model="gpt-mock", messages=[{"role": "user", "content": "a b c d e f g h"}], stream=True
    )
    next(iter(stream))
    stream.close()
    assert upstream.wait_for(lambda s: s["streams_cancelled"] == 1)
    assert upstream.stats()["streams_completed"] == 0


def test_http_control_endpoints(upstream: UpstreamServer) -> None:
    with httpx.Client(base_url=upstream.root) as http:
        assert http.post("/_control", json={"status": 500, "times": 2}).json()["faults"][0]["times"] == 2
        assert http.post("/_control", json={"statuss": 500}).status_code == 400
        assert http.get("/v1/models").status_code == 500
        stats = http.get("/_stats").json()
        assert stats["requests"] == 1
        assert http.get("/_requests").json()[0]["path"] == "/v1/models"
        http.post("/_control/reset")
        assert http.get("/v1/models").status_code == 200
        assert http.get("/_stats").json()["requests"] == 1


def test_anthropic_header_checks(upstream_keyed: UpstreamServer) -> None:
    body = {"model": "claude-mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    url = upstream_keyed.anthropic_url + "/messages"
    with httpx.Client() as http:
        wrong = http.post(url, json=body, headers={"x-api-key": "nope", "anthropic-version": "2023-06-01"})
        assert wrong.status_code == 401
        assert wrong.json() == {
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        }
        no_version = http.post(url, json=body, headers={"x-api-key": UPSTREAM_KEY})
        assert no_version.status_code == 400
        assert no_version.json()["error"]["type"] == "invalid_request_error"
        extra = http.post(
            url, json=body | {"n": 1}, headers={"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"}
        )
        assert extra.status_code == 400 and "n: Extra inputs" in extra.json()["error"]["message"]
        ok = http.post(url, json=body, headers={"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"})
        assert ok.status_code == 200
        assert ok.json()["content"] == [{"type": "text", "text": "Echo: hi"}]
        assert ok.json()["stop_reason"] == "end_turn"


def test_close_is_fast_with_a_request_in_flight() -> None:
    server = UpstreamServer()
    server.fault(delay_s=30)

    async def hang() -> None:
        async with aiohttp.ClientSession() as session:
            with contextlib.suppress(TimeoutError):
                await session.get(server.url + "/models", timeout=aiohttp.ClientTimeout(total=0.2))

    started = time.monotonic()
    asyncio.run(hang())
    server.close()
    assert time.monotonic() - started < 2
