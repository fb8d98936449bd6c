"""OpenAI chat ⇄ Anthropic Messages translation: requests, responses, SSE and stream events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aerodrome.config import DeploymentConfig
from aerodrome.errors import UpstreamError, UpstreamRejected
from aerodrome.providers.anthropic_translate import (
    SSEParser,
    StreamTranslator,
    from_anthropic_response,
    to_anthropic_request,
)
from tests.upstream.protocols import anthropic_stream

DEP = DeploymentConfig(
    name="claude", provider="anth", model="claude-mock", max_output_tokens=256, timeout_s=5
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def body(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "claude-mock", "messages": [{"role": "user", "content": text}], **extra}


# ----------------------------------------------------------------------------- request translation


def test_system_roles_and_max_tokens_default() -> None:
    req = to_anthropic_request(
        {
            "model": "claude-mock",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "salut"},
                {"role": "user", "content": [{"type": "text", "text": "again"}]},
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "user": "u-1",
            "stream_options": {"include_usage": True},
        },
        DEP,
    )
    assert req["system"] == "Be brief.\n\nUse French."
    assert req["max_tokens"] == 256
    assert [m["role"] for m in req["messages"]] == ["user", "assistant", "user"]
    assert req["messages"][0]["content"] == [{"type": "text", "text": "hi"}]
    assert (req["temperature"], req["top_p"], req["stop_sequences"]) == (0.2, 0.9, ["END"])
    assert req["metadata"] == {"user_id": "u-1"}
    assert "stream_options" not in req and "stream" not in req and "user" not in req


def test_max_tokens_requested_and_capped() -> None:
    assert to_anthropic_request(body(max_tokens=10), DEP)["max_tokens"] == 10
    assert to_anthropic_request(body(max_completion_tokens=12, max_tokens=99), DEP)["max_tokens"] == 12
    assert to_anthropic_request(body(max_tokens=100_000), DEP)["max_tokens"] == 256


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tools_and_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    extra: dict[str, Any] = {"tools": [WEATHER]}
    if choice is not None:
        extra["tool_choice"] = choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    req = to_anthropic_request(body(**extra), DEP)
    assert req["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert req.get("tool_choice") == expected


def test_tool_calls_and_results_become_blocks() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        },
    ]
    req = to_anthropic_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
                {"role": "user", "content": "thanks"},
            ],
        },
        DEP,
    )
    user, assistant, results = req["messages"]
    assert user["role"] == "user" and results["role"] == "user"
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
        {"type": "text", "text": "thanks"},
    ]


def test_images_translated_and_unsupported_parts_rejected() -> None:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    req = to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": parts}]}, DEP)
    blocks = req["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    audio = [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]
    with pytest.raises(UpstreamRejected) as info:
        to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": audio}]}, DEP)
    assert info.value.code == "unsupported_content" and not info.value.retryable


@pytest.mark.parametrize(
    "bad",
    [
        body(n=2),
        body(response_format={"type": "json_object"}),
        {"model": "m", "messages": [{"role": "system", "content": "only a system prompt"}]},
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}],
                }
            ],
        },
        body(tools=[{"type": "retrieval"}]),
    ],
)
def test_untranslatable_requests_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(UpstreamRejected):
        to_anthropic_request(bad, DEP)


# ----------------------------------------------------------------------------- response translation


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("stop_sequence", "stop")],
)
def test_response_translation(stop_reason: str, finish: str) -> None:
    out = from_anthropic_response(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-mock",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
        }
    )
    assert out["object"] == "chat.completion" and out["id"] == "msg_1" and out["model"] == "claude-mock"
    assert isinstance(out["created"], int)
    choice = out["choices"][0]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == "Let me check."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert out["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 5,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_malformed_response_is_upstream_error() -> None:
    with pytest.raises(UpstreamError) as info:
        from_anthropic_response({"type": "error"})
    assert info.value.code == "malformed_response"


# ----------------------------------------------------------------------------- SSE and stream translation


def test_sse_parser_handles_any_split() -> None:
    raw = b': comment\r\nevent: a\r\ndata: {"x": 1}\r\n\r\n'
    raw += b"event: b\ndata: line1\ndata: line2\n\ndata: plain\n\n"
    expected = [("a", '{"x": 1}'), ("b", "line1\nline2"), ("message", "plain")]
    whole = SSEParser().feed(raw)
    assert whole == expected
    parser = SSEParser()
    bytewise = [event for i in range(len(raw)) for event in parser.feed(raw[i : i + 1])]
    assert bytewise == expected


def _translate(raw_events: list[bytes]) -> list[dict[str, Any]]:
    parser, translator = SSEParser(), StreamTranslator()
    return [
        chunk for event, data in parser.feed(b"".join(raw_events)) for chunk in translator.feed(event, data)
    ]


def test_stream_translation_text_and_tools() -> None:
    text = _translate(
        anthropic_stream({"model": "claude-mock", "max_tokens": 50, "messages": body("a b")["messages"]})
    )
    assert text[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in text if c["choices"]) == "Echo: a b"
    assert text[-2]["choices"][0]["finish_reason"] == "stop"
    assert text[-1]["choices"] == [] and text[-1]["usage"]["completion_tokens"] == 3
    assert all(c["object"] == "chat.completion.chunk" and c["id"].startswith("msg_") for c in text)
    tool_req = {
        "model": "claude-mock",
        "max_tokens": 50,
        "messages": body("call a tool")["messages"],
        "tools": [{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}],  # type: ignore[index]
    }
    tools = _translate(anthropic_stream(tool_req))
    deltas = [c["choices"][0]["delta"] for c in tools if c["choices"]]
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0]["id"].startswith("toolu_") and calls[0]["function"]["name"] == "get_weather"
    assert {tc["index"] for tc in calls} == {0}
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"city": "call a tool"}
    assert tools[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_translator_errors() -> None:
    with pytest.raises(UpstreamError) as info:
        StreamTranslator().feed("content_block_delta", "{not json")
    assert info.value.code == "malformed_stream"
    overloaded = '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
    with pytest.raises(UpstreamError) as info:
        StreamTranslator().feed("error", overloaded)
    assert info.value.retryable and "Overloaded" in info.value.message
