"""Data-classification enforcement: the request's data class never exceeds the deployment's ceiling.

mock-a is a vendor model (ceiling internal); local-extractive is on-premises (ceiling restricted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer

BODY = {
    "messages": [
        {
            "role": "user",
            "content": "[1] Salaries are reviewed in April.\nQuestion: When are salaries reviewed?",
        }
    ]
}


@pytest.fixture
def cgw(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/c.db")
    cfg["deployments"][0]["hosting"] = "on-prem"  # local-extractive: restricted
    cfg["deployments"][1]["max_data_class"] = "internal"  # mock-a: a vendor model
    cfg["aliases"] += [
        {"name": "chat-mixed", "deployments": ["mock-a", "local-extractive"]},
        {"name": "chat-vendor-safe", "deployments": ["mock-a"], "safe_alias": "chat-local"},
    ]
    with run_gateway(cfg, tmp_path) as gw:
        yield gw


def _chat(
    gw: Gateway, key: str, model: str, data_class: str | None = None
) -> tuple[int, dict[str, object], dict]:
    headers = {"x-aerodrome-data-class": data_class} if data_class else {}
    with gw.client(key) as c:
        r = c.post("/v1/chat/completions", json={**BODY, "model": model}, headers=headers)
    return r.status_code, dict(r.headers), r.json()


def test_internal_data_may_go_to_the_vendor_model(cgw: Gateway, upstream: UpstreamServer) -> None:
    status, headers, _ = _chat(cgw, cgw.make_key("hr"), "chat-mixed", "internal")
    assert status == 200 and headers["x-aerodrome-deployment"] == "mock-a"
    assert len(upstream.requests("/v1/chat/completions")) == 1


def test_confidential_data_is_routed_to_a_permitted_deployment(
    cgw: Gateway, upstream: UpstreamServer
) -> None:
    status, headers, body = _chat(cgw, cgw.make_key("hr"), "chat-mixed", "confidential")
    assert status == 200 and headers["x-aerodrome-deployment"] == "local-extractive"
    assert "April" in str(body)
    assert upstream.requests("/v1/chat/completions") == [], "the vendor never saw the confidential data"
    run = cgw.runs(alias="chat-mixed")[0]
    assert run["meta"]["data_class"] == "confidential"


def test_safe_alias_takes_what_the_alias_may_not(cgw: Gateway, upstream: UpstreamServer) -> None:
    status, headers, _ = _chat(cgw, cgw.make_key("hr"), "chat-vendor-safe", "restricted")
    assert status == 200 and headers["x-aerodrome-deployment"] == "local-extractive"
    assert upstream.requests("/v1/chat/completions") == []
    run = cgw.runs()[0]
    assert run["alias"] == "chat-local" and run["meta"]["rerouted_from"] == "chat-vendor-safe"


def test_refused_when_no_permitted_deployment(cgw: Gateway, upstream: UpstreamServer) -> None:
    status, _, body = _chat(cgw, cgw.make_key("hr"), "chat-small", "confidential")
    assert status == 403
    err = body["error"]  # type: ignore[index]
    assert err["code"] == "data_class_exceeds_model" and "internal" in err["message"]
    assert upstream.requests("/v1/chat/completions") == []
    assert cgw.runs()[0]["status"] == "rejected"


def test_the_key_declares_a_class_for_everything_it_sends(cgw: Gateway, upstream: UpstreamServer) -> None:
    key = cgw.make_key("hr", data_class="confidential")
    assert _chat(cgw, key, "chat-small")[0] == 403  # no header needed: the key's class applies
    status, headers, _ = _chat(cgw, key, "chat-mixed", "public")  # a header cannot lower it
    assert status == 200 and headers["x-aerodrome-deployment"] == "local-extractive"
    assert upstream.requests("/v1/chat/completions") == []


def test_bad_data_class_values_are_refused(cgw: Gateway) -> None:
    status, _, body = _chat(cgw, cgw.make_key("hr"), "chat-mixed", "secret")
    assert status == 400 and body["error"]["code"] == "invalid_data_class"  # type: ignore[index]
    with cgw.client(cgw.admin_key) as c:
        r = c.post("/api/keys", json={"department": "hr", "role": "user", "data_class": "top-secret"})
        assert r.status_code == 400
        r = c.put("/api/catalog/aliases/loop", json={"deployments": ["mock-a"], "safe_alias": "loop"})
        assert r.status_code == 400
