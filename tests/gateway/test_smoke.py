from __future__ import annotations

import openai

from tests.harness import Gateway


def test_openai_sdk_chat_and_stream(gateway: Gateway) -> None:
    key = gateway.make_key("hr")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key)
    resp = client.chat.completions.create(
        model="chat-small", messages=[{"role": "user", "content": "hello there"}]
    )
    assert resp.choices[0].message.content == "Echo: hello there"
    chunks = list(
        client.chat.completions.create(
            model="chat-small",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hi"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    runs = gateway.runs()
    assert {r["stream"] for r in runs} == {True, False}
    assert all(r["status"] == "ok" for r in runs)
