"""Bad input through real HTTP: every refusal in OpenAI's error shape with a stable code."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.gateway.helpers import assert_error, chat_body, deployments, gateway_with, server
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def shared_upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as up:
        yield up


@pytest.fixture(scope="module")
def shared_gateway(
    shared_upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with gateway_with(shared_upstream.url, tmp_path_factory.mktemp("gw")) as gw:
        yield gw


@pytest.fixture
def upstream(shared_upstream: UpstreamServer) -> UpstreamServer:
    """One upstream for the module, fresh (no faults, no requests) for each test."""
    shared_upstream.reset()
    return shared_upstream


@pytest.fixture
def gateway(shared_gateway: Gateway, upstream: UpstreamServer) -> Gateway:
    """One gateway for the module; each test makes its own keys, so limits do not leak."""
    return shared_gateway


@pytest.fixture
def key(gateway: Gateway) -> str:
    return gateway.make_key("hr")


@pytest.fixture
def c(gateway: Gateway, key: str) -> Iterator[httpx.Client]:
    with gateway.client(key) as client:
        yield client


# ------------------------------------------------------------------ the body


def test_invalid_json_is_400_invalid_json(c: httpx.Client, upstream: UpstreamServer) -> None:
    r = c.post(
        URL, content=b'{"model": "chat-small", "messages": [', headers={"content-type": "application/json"}
    )
    assert_error(r, 400, "invalid_json")
    assert upstream.stats()["requests"] == 0


def test_json_that_is_not_an_object_is_400(c: httpx.Client) -> None:
    r = c.post(URL, json=["chat-small"])
    assert_error(r, 400, "invalid_json")


def test_messages_as_a_string_is_400_naming_the_param(c: httpx.Client) -> None:
    r = c.post(URL, json={"model": "chat-small", "messages": "hello"})
    assert_error(r, 400, "invalid_type", param="messages")


def test_stream_as_a_string_is_400_naming_the_param(c: httpx.Client) -> None:
    r = c.post(URL, json=chat_body(stream="yes"))
    assert_error(r, 400, "invalid_type", param="stream")


def test_max_tokens_as_a_string_is_400_naming_the_param(c: httpx.Client) -> None:
    r = c.post(URL, json=chat_body(max_tokens="10"))
    assert_error(r, 400, "invalid_type", param="max_tokens")


def test_missing_messages_is_400(c: httpx.Client) -> None:
    r = c.post(URL, json={"model": "chat-small"})
    assert_error(r, 400, "missing_required_parameter", param="messages")


def test_empty_messages_is_400(c: httpx.Client) -> None:
    r = c.post(URL, json={"model": "chat-small", "messages": []})
    assert_error(r, 400, param="messages")


def test_missing_model_is_400(c: httpx.Client) -> None:
    r = c.post(URL, json={"messages": [{"role": "user", "content": "hi"}]})
    assert_error(r, 400, "missing_required_parameter", param="model")


def test_bad_role_is_400(c: httpx.Client) -> None:
    r = c.post(URL, json={"model": "chat-small", "messages": [{"role": "wizard", "content": "hi"}]})
    assert_error(r, 400, param="messages[0].role")


def test_embeddings_without_input_is_400(c: httpx.Client) -> None:
    r = c.post("/v1/embeddings", json={"model": "embed-small"})
    assert_error(r, 400, "missing_required_parameter", param="input")


def test_chat_on_an_embeddings_model_is_400(c: httpx.Client, upstream: UpstreamServer) -> None:
    r = c.post(URL, json=chat_body("embed-small"))
    assert_error(r, 400, "wrong_model_kind", param="model")
    assert upstream.stats()["requests"] == 0


# ------------------------------------------------------------------ the model


def test_unknown_model_is_404_model_not_found(c: httpx.Client) -> None:
    r = c.post(URL, json=chat_body("gpt-does-not-exist"))
    assert_error(r, 404, "model_not_found", param="model")


def test_model_not_permitted_for_the_key_is_403(gateway: Gateway, upstream: UpstreamServer) -> None:
    key = gateway.make_key("hr", aliases=["chat-local"])
    with gateway.client(key) as c:
        assert_error(c.post(URL, json=chat_body("chat-small")), 403, "model_not_permitted", param="model")
        assert c.post(URL, json=chat_body("chat-local")).status_code == 200
    assert upstream.stats()["requests"] == 0


# ------------------------------------------------------------------ size


@pytest.fixture
def small_gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    with gateway_with(upstream.url, tmp_path, server=server(max_body_bytes=2048)) as gw:
        yield gw


def test_oversize_body_with_content_length_is_413(small_gateway: Gateway, upstream: UpstreamServer) -> None:
    key = small_gateway.make_key("hr")
    with small_gateway.client(key) as c:
        assert c.post(URL, json=chat_body(content="x" * 1000)).status_code == 200
        r = c.post(URL, json=chat_body(content="x" * 5000))
        assert_error(r, 413, "payload_too_large")
    assert upstream.stats()["requests"] == 1


def test_oversize_chunked_body_without_content_length_is_413(
    small_gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = small_gateway.make_key("hr")
    payload = httpx.Request("POST", "http://x", json=chat_body(content="y" * 5000)).content

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 512):
            yield payload[i : i + 512]

    with small_gateway.client(key) as c:
        request = c.build_request("POST", URL, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        r = c.send(request)
        assert_error(r, 413, "payload_too_large")
    assert upstream.stats()["requests"] == 0


# ------------------------------------------------------------------ keys


def test_missing_key_is_401(gateway: Gateway) -> None:
    with gateway.client() as c:
        assert_error(c.post(URL, json=chat_body()), 401, "missing_api_key")


def test_invalid_key_is_401(gateway: Gateway) -> None:
    with gateway.client("ak_notarealkey_" + "x" * 32) as c:
        assert_error(c.post(URL, json=chat_body()), 401, "invalid_api_key")
    with gateway.client("sk-something-else") as c:
        assert_error(c.post(URL, json=chat_body()), 401, "invalid_api_key")
    real = gateway.make_key("hr")
    with gateway.client(real[:-1] + ("A" if real[-1] != "A" else "B")) as c:  # right prefix, wrong secret
        assert_error(c.post(URL, json=chat_body()), 401, "invalid_api_key")


def test_expired_key_is_401(gateway: Gateway) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1.2)
    key = gateway.make_key("hr", expires_at=expires.isoformat())
    with gateway.client(key) as c:
        assert c.post(URL, json=chat_body()).status_code == 200
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
        assert_error(c.post(URL, json=chat_body()), 401, "expired_api_key")


def test_revoked_key_is_401_at_once(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as admin:
        created = admin.post("/api/keys", json={"department": "hr", "role": "user"}).json()
    with gateway.client(created["key"]) as c:
        assert c.post(URL, json=chat_body()).status_code == 200
        with gateway.client(gateway.admin_key) as admin:
            assert admin.delete(f"/api/keys/{created['id']}").status_code == 200
        assert_error(c.post(URL, json=chat_body()), 401, "revoked_api_key")


# ------------------------------------------------------------------ limits


def test_rate_limit_is_429_with_retry_after(gateway: Gateway, upstream: UpstreamServer) -> None:
    key = gateway.make_key("hr", rpm=2)
    with gateway.client(key) as c:
        assert c.post(URL, json=chat_body()).status_code == 200
        assert c.post(URL, json=chat_body()).status_code == 200
        r = c.post(URL, json=chat_body())
        assert_error(r, 429, "rate_limited")
        assert 1 <= int(r.headers["retry-after"]) <= 120  # the sliding window: up to two minutes
    assert upstream.stats()["requests"] == 2
    other = gateway.make_key("hr", rpm=2)  # limits are per key
    with gateway.client(other) as c:
        assert c.post(URL, json=chat_body()).status_code == 200


def test_token_limit_is_429_with_retry_after(gateway: Gateway, upstream: UpstreamServer) -> None:
    key = gateway.make_key("hr", tpm=40)
    with gateway.client(key) as c:
        assert c.post(URL, json=chat_body(content="word " * 20)).status_code == 200
        r = c.post(URL, json=chat_body(content="word " * 20))
        err = assert_error(r, 429, "rate_limited")
        assert "token" in err["message"]
        assert int(r.headers["retry-after"]) >= 1
    assert upstream.stats()["requests"] == 1


def test_budget_is_429_budget_exceeded_with_retry_after(gateway: Gateway, upstream: UpstreamServer) -> None:
    key = gateway.make_key("hr", budget={"usd": 0.0001, "period": "day"})
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body())
        assert_error(r, 429, "budget_exceeded")
        assert int(r.headers["retry-after"]) >= 1
        assert int(r.headers["retry-after"]) <= 86400
    assert upstream.stats()["requests"] == 0


# ------------------------------------------------------------------ the upstream fails


def test_upstream_5xx_is_retried_then_502_naming_the_cause(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    upstream.fault(status=500, times=10, message="the GPU caught fire")
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body())
    err = assert_error(r, 502, "upstream_500")
    assert "500" in err["message"] and "the GPU caught fire" in err["message"]
    assert upstream.stats()["requests"] == 2  # max_retries=1 in the test config


@pytest.fixture
def fast_timeout_gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    deps = deployments(upstream.url, mock_a={"timeout_s": 0.4}, mock_b={"timeout_s": 0.4})
    with gateway_with(upstream.url, tmp_path, deployments=deps) as gw:
        yield gw


def test_upstream_timeout_is_504(fast_timeout_gateway: Gateway, upstream: UpstreamServer) -> None:
    upstream.fault(delay_s=1.0, times=10)
    key = fast_timeout_gateway.make_key("hr")
    with fast_timeout_gateway.client(key) as c:
        r = c.post(URL, json=chat_body())
    err = assert_error(r, 504, "upstream_timeout")
    assert "0.4" in err["message"]


def test_stream_timeout_before_the_first_chunk_is_504(
    fast_timeout_gateway: Gateway, upstream: UpstreamServer
) -> None:
    upstream.fault(delay_s=1.0, times=10)
    key = fast_timeout_gateway.make_key("hr")
    with fast_timeout_gateway.client(key) as c:
        r = c.post(URL, json=chat_body(stream=True))
    assert_error(r, 504, "upstream_timeout")


def test_connection_reset_is_retried_then_502(gateway: Gateway, upstream: UpstreamServer) -> None:
    upstream.fault(reset=True, times=10)
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body())
        err = assert_error(r, 502, "upstream_connection")
        assert "connection" in err["message"]
        assert upstream.stats()["requests"] == 2
        upstream.reset()
        upstream.fault(reset=True, times=1)  # one reset, then the retry succeeds
        r = c.post(URL, json=chat_body())
        assert r.status_code == 200, r.text
        assert upstream.stats()["requests"] == 2


def test_malformed_sse_before_the_first_chunk_is_retried(gateway: Gateway, upstream: UpstreamServer) -> None:
    upstream.fault(malformed_sse_after=0, times=1)
    key = gateway.make_key("hr")
    with gateway.client(key) as c, c.stream("POST", URL, json=chat_body(content="hi", stream=True)) as r:
        assert r.status_code == 200
        from tests.gateway.helpers import sse_events

        events = sse_events(r)
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    text = "".join(ch["delta"].get("content") or "" for e in events[:-1] for ch in e["choices"])
    assert text == "Echo: hi"
    assert upstream.stats()["streams_broken"] == 1
    assert upstream.stats()["requests"] == 2


def test_malformed_sse_before_the_first_chunk_everywhere_is_502(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    upstream.fault(malformed_sse_after=0, times=10)
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body(stream=True))
    err = assert_error(r, 502, "malformed_stream")
    assert "malformed" in err["message"]
