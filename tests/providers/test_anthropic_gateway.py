"""The Anthropic provider behind the gateway: OpenAI clients talk to an Anthropic wire protocol."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UPSTREAM_KEY, UpstreamServer


@pytest.fixture
def anthropic_gateway(
    upstream_keyed: UpstreamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gateway]:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", UPSTREAM_KEY)
    cfg = base_config(None, db_url=f"sqlite:///{tmp_path}/a.db")
    cfg["providers"].append(
        {
            "name": "claude",
            "kind": "anthropic",
            "base_url": upstream_keyed.anthropic_url,
            "api_key": "env:TEST_ANTHROPIC_KEY",
        }
    )
    cfg["deployments"].append(
        {
            "name": "claude-a",
            "provider": "claude",
            "model": "claude-mock",
            "timeout_s": 3,
            "prices": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
        }
    )
    cfg["aliases"].append({"name": "chat-claude", "deployments": ["claude-a"]})
    with run_gateway(cfg, tmp_path) as gw:
        yield gw


def test_chat_and_stream_through_anthropic(
    anthropic_gateway: Gateway, upstream_keyed: UpstreamServer
) -> None:
    gw = anthropic_gateway
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.make_key("hr"))
    resp = client.chat.completions.create(
        model="chat-claude",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello claude"}],
    )
    assert resp.choices[0].message.content == "Echo: hello claude"
    assert resp.usage is not None and resp.usage.prompt_tokens > 0
    sent = upstream_keyed.requests("/v1/messages")[-1]
    assert sent["headers"]["x-api-key"] == UPSTREAM_KEY
    assert sent["body"]["system"] == "Be brief."
    assert sent["body"]["model"] == "claude-mock"

    chunks = list(
        client.chat.completions.create(
            model="chat-claude",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: stream me"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    runs = gw.runs(alias="chat-claude")
    assert len(runs) == 2
    assert all(r["provider"] == "claude" and r["status"] == "ok" and not r["tokens_estimated"] for r in runs)
    assert all(r["cost_usd"] > 0 for r in runs)


def test_anthropic_tool_calls_come_back_in_openai_shape(anthropic_gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=anthropic_gateway.url + "/v1", api_key=anthropic_gateway.make_key("hr"))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "look up a policy",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    resp = client.chat.completions.create(
        model="chat-claude", tools=tools, messages=[{"role": "user", "content": "please call a tool"}]
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and choice.message.tool_calls[0].function.name == "lookup"


def test_anthropic_has_no_embeddings(anthropic_gateway: Gateway) -> None:
    gw = anthropic_gateway
    with gw.client(gw.make_key("hr")) as c:
        r = c.post("/v1/embeddings", json={"model": "chat-claude", "input": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "wrong_model_kind"
