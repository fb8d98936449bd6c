"""/metrics, /healthz and /readyz."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.helpers import chat_body
from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"


def _samples(gateway: Gateway) -> list[tuple[str, dict[str, str], float]]:
    with gateway.client() as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return [
        (s.name, dict(s.labels), s.value)
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    ]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


def test_metrics_count_requests_latency_tokens_cost_and_errors(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    hr, finance = gateway.make_key("hr"), gateway.make_key("finance")
    with gateway.client(hr) as c:
        for _ in range(3):
            assert c.post(URL, json=chat_body(content="three little words")).status_code == 200
        upstream.fault(status=500, times=2)
        assert c.post(URL, json=chat_body()).status_code == 502
        assert c.post(URL, json=chat_body("no-such-model")).status_code == 404
    with gateway.client(finance) as c, c.stream("POST", URL, json=chat_body("chat-ha", stream=True)) as r:
        r.read()
    s = _samples(gateway)
    common = {"alias": "chat-small", "department": "hr"}
    assert _value(s, "aerodrome_requests_total", status="ok", endpoint="chat", **common) == 3
    assert _value(s, "aerodrome_requests_total", status="error", **common) == 1
    assert _value(s, "aerodrome_request_latency_seconds_count", **common) == 4
    assert _value(s, "aerodrome_request_latency_seconds_sum", **common) > 0
    assert _value(s, "aerodrome_request_latency_seconds_count", alias="chat-ha", department="finance") == 1
    assert _value(s, "aerodrome_time_to_first_token_seconds_count", alias="chat-ha") == 1
    assert _value(s, "aerodrome_tokens_total", kind="prompt", **common) >= 9
    assert _value(s, "aerodrome_tokens_total", kind="completion", **common) == 12
    assert _value(s, "aerodrome_cost_usd_total", **common) > 0
    assert _value(s, "aerodrome_cost_usd_total", alias="chat-ha", department="finance") > 0
    assert _value(s, "aerodrome_errors_total", code="upstream_500", **common) == 1
    assert _value(s, "aerodrome_errors_total", code="model_not_found", department="hr") == 1
    # a made-up model name is not a label value (that would let clients grow the series without bound)
    assert not any("no-such-model" in lab.values() for _, lab, _ in s)


def test_healthz_and_readyz(gateway: Gateway) -> None:
    with gateway.client() as c:
        h = c.get("/healthz")
        assert h.status_code == 200 and h.json()["status"] == "ok"
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ok", "problems": []}
        rt = gateway.runtime
        rt.ready = False
        try:
            r = c.get("/readyz")
            assert r.status_code == 503 and r.json()["status"] == "unavailable"
        finally:
            rt.ready = True


def test_access_log_has_one_structured_line_per_call(
    upstream: UpstreamServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/al.db")
    cfg["server"]["access_log"] = True
    with run_gateway(cfg, tmp_path) as gw, caplog.at_level(logging.INFO, logger="aerodrome.gateway"):
        with gw.client(gw.make_key("hr")) as c:
            r = c.post(
                "/v1/chat/completions",
                headers={"x-request-id": "req-42"},
                json={"model": "chat-small", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert r.status_code == 200
        lines = [rec for rec in caplog.records if rec.getMessage() == "gateway call"]
    assert len(lines) == 1
    assert lines[0].request_id == "req-42"  # type: ignore[attr-defined]
    assert lines[0].run_id == r.headers["x-aerodrome-run-id"]  # type: ignore[attr-defined]
    assert lines[0].alias == "chat-small" and lines[0].status == "ok"  # type: ignore[attr-defined]
