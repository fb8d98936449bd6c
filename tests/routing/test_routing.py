"""Routing through real HTTP: retries, fallbacks, circuit breaker, balancing, streams."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.helpers import aliases, assert_error, chat_body, gateway_with, one_run, routing, sse_events
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"


def upstream_models(upstream: UpstreamServer) -> list[str]:
    return [r["body"]["model"] for r in upstream.requests("/v1/chat/completions")]


def test_fallback_to_the_next_deployment(gateway: Gateway, upstream: UpstreamServer) -> None:
    upstream.fault(status=500, times=10, model="gpt-mock")
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body("chat-ha"))
    assert r.status_code == 200, r.text
    assert r.headers["x-aerodrome-deployment"] == "mock-b"
    assert r.json()["choices"][0]["message"]["content"] == "Echo: hello there"
    assert upstream_models(upstream) == ["gpt-mock", "gpt-mock", "gpt-mock-b"]
    run = one_run(gateway, r)
    assert run["status"] == "ok"
    assert run["deployment"] == "mock-b" and run["upstream_model"] == "gpt-mock-b"
    assert run["attempts"] == 3
    assert run["meta"]["fallback"] is True
    assert len(run["meta"]["upstream_errors"]) == 2


def test_retry_with_backoff_succeeds_after_one_503(gateway: Gateway, upstream: UpstreamServer) -> None:
    upstream.fault(status=503, times=1)
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body("chat-small"))
    assert r.status_code == 200, r.text
    assert upstream_models(upstream) == ["gpt-mock", "gpt-mock"]
    run = one_run(gateway, r)
    assert run["attempts"] == 2 and run["status"] == "ok"
    assert "fallback" not in (run["meta"] or {})
    assert "503" in run["meta"]["upstream_errors"][0]


def test_upstream_400_is_not_retried_and_comes_back_as_400(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    upstream.fault(status=400, times=5, message="max_tokens is too large for this model")
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body("chat-ha"))
    err = assert_error(r, 400, "upstream_rejected")
    assert "max_tokens is too large" in err["message"]
    assert upstream.stats()["requests"] == 1  # neither retried nor sent to mock-b
    run = one_run(gateway, r)
    assert run["status"] == "error" and run["http_status"] == 400 and run["attempts"] == 1


@pytest.fixture
def breaker_gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    cfg = routing(max_retries=0, breaker={"failures": 2, "cooldown_s": 0.6})
    with gateway_with(upstream.url, tmp_path, routing=cfg) as gw:
        yield gw


def test_circuit_breaker_opens_skips_and_recovers(breaker_gateway: Gateway, upstream: UpstreamServer) -> None:
    gw = breaker_gateway
    upstream.fault(status=500, times=2, model="gpt-mock")
    key = gw.make_key("hr")
    with gw.client(key) as c:
        for _ in range(2):  # mock-a fails twice (falling back to mock-b): its breaker opens
            r = c.post(URL, json=chat_body("chat-ha"))
            assert r.status_code == 200 and r.headers["x-aerodrome-deployment"] == "mock-b"
        assert gw.runtime.router.breakers.state("mock-a") == "open"
        upstream.reset()
        r = c.post(URL, json=chat_body("chat-ha"))
        assert r.status_code == 200 and r.headers["x-aerodrome-deployment"] == "mock-b"
        assert upstream_models(upstream) == ["gpt-mock-b"]  # mock-a was not called at all
        assert one_run(gw, r)["attempts"] == 1
        time.sleep(0.7)  # the cooldown passes: one trial goes to mock-a, which is healthy again
        upstream.reset()
        r = c.post(URL, json=chat_body("chat-ha"))
        assert r.status_code == 200 and r.headers["x-aerodrome-deployment"] == "mock-a"
        assert upstream_models(upstream) == ["gpt-mock"]
        assert gw.runtime.router.breakers.state("mock-a") == "closed"


def test_every_deployment_open_is_503_circuit_open(
    breaker_gateway: Gateway, upstream: UpstreamServer
) -> None:
    gw = breaker_gateway
    upstream.fault(status=500, times=2)
    key = gw.make_key("hr")
    with gw.client(key) as c:
        for _ in range(2):
            assert_error(c.post(URL, json=chat_body("chat-small")), 502, "upstream_500")
        upstream.reset()
        r = c.post(URL, json=chat_body("chat-small"))
        assert_error(r, 503, "circuit_open")
        assert upstream.stats()["requests"] == 0
        assert one_run(gw, r)["status"] == "rejected"


def test_a_half_open_fallback_is_not_lost_while_the_first_deployment_answers(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = routing(max_retries=0, breaker={"failures": 1, "cooldown_s": 0.4})
    with gateway_with(upstream.url, tmp_path, routing=cfg) as gw:
        key = gw.make_key("hr")
        with gw.client(key) as c:
            upstream.fault(status=500, times=1, model="gpt-mock")
            upstream.fault(status=500, times=1, model="gpt-mock-b")
            assert_error(c.post(URL, json=chat_body("chat-ha")), 502)  # both open now
            time.sleep(0.5)
            r = c.post(URL, json=chat_body("chat-ha"))  # mock-a's trial succeeds
            assert r.status_code == 200 and r.headers["x-aerodrome-deployment"] == "mock-a"
            upstream.fault(status=500, times=1, model="gpt-mock")
            r = c.post(URL, json=chat_body("chat-ha"))  # mock-a fails: mock-b must still be tried
            assert r.status_code == 200, r.text
            assert r.headers["x-aerodrome-deployment"] == "mock-b"


@pytest.fixture
def rr_gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    extra = {"name": "chat-rr", "deployments": ["mock-a", "mock-b"], "strategy": "round_robin"}
    with gateway_with(upstream.url, tmp_path, aliases=aliases(upstream.url, extra)) as gw:
        yield gw


def test_round_robin_spreads_requests_over_the_deployments(
    rr_gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = rr_gateway.make_key("hr")
    with rr_gateway.client(key) as c:
        served = [c.post(URL, json=chat_body("chat-rr")).headers["x-aerodrome-deployment"] for _ in range(6)]
    assert Counter(served) == {"mock-a": 3, "mock-b": 3}
    assert Counter(upstream_models(upstream)) == {"gpt-mock": 3, "gpt-mock-b": 3}


@pytest.mark.parametrize("fault", [{"status": 500}, {"malformed_sse_after": 0}, {"reset": True}])
def test_stream_falls_back_before_the_first_chunk(
    gateway: Gateway, upstream: UpstreamServer, fault: dict[str, object]
) -> None:
    upstream.fault(times=10, model="gpt-mock", **fault)
    key = gateway.make_key("hr")
    with (
        gateway.client(key) as c,
        c.stream("POST", URL, json=chat_body("chat-ha", content="hi", stream=True)) as r,
    ):
        assert r.status_code == 200
        assert r.headers["x-aerodrome-deployment"] == "mock-b"
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    assert "".join(ch["delta"].get("content") or "" for e in events[:-1] for ch in e["choices"]) == "Echo: hi"
    assert events[0]["model"] == "gpt-mock-b"
    run = one_run(gateway, r)
    assert run["status"] == "ok" and run["deployment"] == "mock-b" and run["meta"]["fallback"] is True


def test_a_deployment_timeout_changed_through_the_api_applies_at_once(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    with gateway.client(gateway.admin_key) as admin:
        r = admin.put(
            "/api/catalog/deployments/api-dep", json={"provider": "mock", "model": "gpt-mock", "timeout_s": 5}
        )
        assert r.status_code == 200, r.text
        assert (
            admin.put("/api/catalog/aliases/chat-api", json={"deployments": ["api-dep"]}).status_code == 200
        )
        key = gateway.make_key("hr")
        with gateway.client(key) as c:
            upstream.fault(delay_s=0.6, times=1)
            assert c.post(URL, json=chat_body("chat-api")).status_code == 200  # 0.6 s is within 5 s
            r = admin.put(
                "/api/catalog/deployments/api-dep",
                json={"provider": "mock", "model": "gpt-mock", "timeout_s": 0.3},
            )
            assert r.status_code == 200
            upstream.fault(delay_s=0.6, times=2)
            assert_error(c.post(URL, json=chat_body("chat-api")), 504, "upstream_timeout")
