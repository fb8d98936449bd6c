"""The Anthropic provider against the local upstream: wire format, tools, errors, streaming, cancellation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest

from aerodrome.config import DeploymentConfig, ProviderConfig
from aerodrome.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from aerodrome.providers.anthropic import AnthropicProvider, factory
from aerodrome.providers.base import Provider, ProviderContext
from tests.providers.test_anthropic_translate import DEP, WEATHER, body
from tests.upstream.fixtures import UPSTREAM_KEY, UpstreamServer

T = TypeVar("T")


@pytest.fixture
def up() -> Iterator[UpstreamServer]:
    """The local upstream, requiring the provider to send ``UPSTREAM_KEY``."""
    with UpstreamServer(api_key=UPSTREAM_KEY) as server:
        yield server


def run(
    up: UpstreamServer,
    fn: Callable[[AnthropicProvider, DeploymentConfig], Awaitable[T]],
    *,
    api_key: str = UPSTREAM_KEY,
    **dep: Any,
) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession() as http:
            config = ProviderConfig(name="anth", kind="anthropic", base_url=up.anthropic_url)
            provider = factory(ProviderContext(config=config, http=http, api_key=api_key))
            assert isinstance(provider, AnthropicProvider) and isinstance(provider, Provider)
            try:
                return await fn(provider, DEP.model_copy(update=dep))
            finally:
                await provider.aclose()

    return asyncio.run(main())


async def collect(
    provider: AnthropicProvider, dep: DeploymentConfig, req: dict[str, Any]
) -> list[dict[str, Any]]:
    return [chunk async for chunk in provider.chat_stream(dep, req)]


def test_chat(up: UpstreamServer) -> None:
    req = body("hello there", messages=[{"role": "system", "content": "sys"}, *body()["messages"]])
    out = run(up, lambda p, d: p.chat(d, req))
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Echo: hello there"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    [seen] = up.requests()
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["body"]["system"] == "sys" and seen["body"]["max_tokens"] == 256
    assert "stream" not in seen["body"]


def test_chat_stream(up: UpstreamServer) -> None:
    chunks = run(up, lambda p, d: collect(p, d, body("one two three")))
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == (
        "Echo: one two three"
    )
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert up.requests()[0]["body"]["stream"] is True
    assert up.stats()["streams_completed"] == 1


def test_tool_round_trip(up: UpstreamServer) -> None:
    first = run(up, lambda p, d: p.chat(d, body("please call a tool", tools=[WEATHER])))
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    [call] = message["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "please call a tool"}
    follow = body(tools=[WEATHER])
    follow["messages"] = [
        *body("please call a tool")["messages"],
        message,
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    # The mock refuses a tool_result whose tool_use_id is not in the previous turn, as Anthropic does.
    second = run(up, lambda p, d: p.chat(d, follow))
    assert second["choices"][0]["message"]["content"] == "Tool result: sunny"


def test_forced_tool_choice_stream_and_limits(up: UpstreamServer) -> None:
    forced = body(
        "no trigger here",
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    chunks = run(up, lambda p, d: collect(p, d, forced))
    names = [
        tc["function"].get("name")
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert "get_weather" in names and chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    short = run(up, lambda p, d: p.chat(d, body("a b c d e", max_tokens=2)))
    assert short["choices"][0]["finish_reason"] == "length"
    stopped = run(up, lambda p, d: p.chat(d, body("a b STOP c", stop=["STOP"])))
    assert (
        stopped["choices"][0]["message"]["content"] == "Echo: a b "
        and stopped["choices"][0]["finish_reason"] == "stop"
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "upstream_error"),
        (503, "upstream_error"),
        (429, "upstream_rate_limited"),
        (529, "upstream_overloaded"),
    ],
)
def test_retryable_statuses(up: UpstreamServer, status: int, code: str) -> None:
    up.fault(status=status, times=2)
    with pytest.raises(UpstreamError) as info:
        run(up, lambda p, d: p.chat(d, body()))
    assert type(info.value) is UpstreamError and info.value.retryable
    assert (info.value.upstream_status, info.value.code) == (status, code)
    with pytest.raises(UpstreamError) as info:  # a stream fails before its first chunk, the same way
        run(up, lambda p, d: collect(p, d, body()))
    assert info.value.retryable and info.value.upstream_status == status
    assert run(up, lambda p, d: p.chat(d, body()))["choices"]


def test_client_errors_are_rejected_with_upstream_message(up: UpstreamServer) -> None:
    up.fault(status=400, message="messages.0: bad block")
    with pytest.raises(UpstreamRejected) as info:
        run(up, lambda p, d: p.chat(d, body()))
    assert not info.value.retryable and info.value.upstream_status == 400
    assert "messages.0: bad block" in info.value.message
    with pytest.raises(UpstreamRejected, match="temperature"):  # the real API's 0..1 range
        run(up, lambda p, d: p.chat(d, body(temperature=1.5)))


def test_bad_key_is_not_the_callers_fault(up: UpstreamServer) -> None:
    with pytest.raises(UpstreamError) as info:
        run(up, lambda p, d: p.chat(d, body()), api_key="sk-wrong")
    assert not isinstance(info.value, UpstreamRejected)
    assert (info.value.upstream_status, info.value.code) == (401, "upstream_auth_failed")
    assert "sk-wrong" not in info.value.message


def test_timeouts(up: UpstreamServer) -> None:
    up.fault(delay_s=1.0, times=2)
    with pytest.raises(UpstreamTimeout):
        run(up, lambda p, d: p.chat(d, body()), timeout_s=0.2)
    with pytest.raises(UpstreamTimeout) as info:
        run(up, lambda p, d: collect(p, d, body()), timeout_s=0.2)
    assert info.value.retryable


def test_connection_failures_are_retryable(up: UpstreamServer) -> None:
    up.fault(reset=True)
    with pytest.raises(UpstreamError) as info:
        run(up, lambda p, d: p.chat(d, body()))
    assert type(info.value) is UpstreamError and info.value.retryable
    closed = UpstreamServer()
    closed.close()
    with pytest.raises(UpstreamError) as info:
        run(closed, lambda p, d: p.chat(d, body()))
    assert info.value.retryable


def test_broken_streams(up: UpstreamServer) -> None:
    async def partial(
        p: AnthropicProvider, d: DeploymentConfig
    ) -> tuple[list[dict[str, Any]], UpstreamError]:
        got: list[dict[str, Any]] = []
        with pytest.raises(UpstreamError) as info:
            async for chunk in p.chat_stream(d, body("a b c d e f")):
                got.append(chunk)
        return got, info.value

    up.fault(malformed_sse_after=4)  # message_start, block start, ping, one delta
    got, error = run(up, partial)
    assert len(got) == 2 and error.code == "malformed_stream" and not error.retryable
    up.fault(malformed_sse_after=0)
    got, error = run(up, partial)
    assert got == [] and error.code == "malformed_stream" and error.retryable
    up.fault(reset_after=5)
    got, error = run(up, partial)
    assert len(got) == 3 and error.code == "stream_interrupted" and not error.retryable


def test_stream_without_usage(up: UpstreamServer) -> None:
    up.fault(omit_usage=True)
    chunks = run(up, lambda p, d: collect(p, d, body()))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_consumer_closing_the_stream_drops_the_upstream(up: UpstreamServer) -> None:
    up.fault(slow_stream_s=0.05, times=2)

    async def seen_cancelled(count: int) -> bool:
        # Polled while the HTTP session is still open: only resp.close() can explain the disconnect.
        return await asyncio.to_thread(up.wait_for, lambda s: s["streams_cancelled"] == count, 1.0)

    async def close_early(p: AnthropicProvider, d: DeploymentConfig) -> bool:
        stream = p.chat_stream(d, body("a b c d e f g h i j"))
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        return await seen_cancelled(1)

    async def cancel_task(p: AnthropicProvider, d: DeploymentConfig) -> bool:
        async def consume() -> None:
            async for _ in p.chat_stream(d, body("a b c d e f g h i j")):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.12)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await seen_cancelled(2)

    assert run(up, close_early)
    assert run(up, cancel_task)
    assert up.stats()["streams_completed"] == 0


def test_no_embeddings(up: UpstreamServer) -> None:
    with pytest.raises(UpstreamRejected) as info:
        run(up, lambda p, d: p.embeddings(d, {"model": "m", "input": "x"}))
    assert info.value.code == "unsupported_endpoint"
    assert up.requests() == []
