"""A client that leaves before the answer (non-streaming, or before the first streamed chunk)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer

CHAT = {"model": "chat-small", "messages": [{"role": "user", "content": "slow please"}]}


@pytest.mark.parametrize("stream", [False, True])
def test_leaving_before_the_answer_cancels_and_records(
    gateway: Gateway, upstream: UpstreamServer, stream: bool
) -> None:
    key = gateway.make_key("hr", budget={"usd": 1.0, "period": "month"})
    upstream.fault(delay_s=1.5)
    started = time.monotonic()
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=0.3) as c,
    ):
        c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    deadline = time.monotonic() + 5
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        runs = [r for r in gateway.runs(alias="chat-small") if r["status"] == "client_disconnected"]
        if runs:
            break
        time.sleep(0.05)
    assert len(runs) == 1, gateway.runs()
    run = runs[0]
    # The gateway stopped waiting when the client left, not when the slow upstream answered.
    assert float(run["latency_ms"]) < 1200, run  # type: ignore[arg-type]
    assert run["http_status"] == 499 and run["cost_usd"] == 0
    assert time.monotonic() - started < 5
    # The budget reservation was released: the key's account holds nothing in flight.
    with gateway.client(gateway.admin_key) as c:
        accounts = [b for b in c.get("/api/budgets").json()["data"] if b["scope"] == "key"]
    assert accounts and all(b["reserved"] == 0 for b in accounts)
