"""The catalog API: read, change without restart, secrets as references only, audited."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UPSTREAM_KEY, UpstreamServer

SECRET = "sk-live-do-not-leak-8f3a1c"
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


def _chat(c: httpx.Client, model: str) -> httpx.Response:
    return c.post("/v1/chat/completions", json={"model": model, **CHAT})


def test_list_catalog(gateway: Gateway) -> None:
    with gateway.client(gateway.make_key("hr", "user")) as c:
        providers = c.get("/api/catalog/providers")
        assert providers.status_code == 200
        assert {p["name"] for p in providers.json()["data"]} == {"local", "mock"}
        deployments = c.get("/api/catalog/deployments").json()["data"]
        mock_a = next(d for d in deployments if d["name"] == "mock-a")
        assert (mock_a["provider"], mock_a["model"], mock_a["source"]) == ("mock", "gpt-mock", "config")
        assert mock_a["prices"] == {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
        aliases = c.get("/api/catalog/aliases").json()["data"]
        assert {a["name"] for a in aliases} == {"chat-local", "chat-small", "chat-ha", "embed-small"}
        ha = next(a for a in aliases if a["name"] == "chat-ha")
        assert ha["usable_deployments"] == ["mock-a", "mock-b"]
        assert c.get("/api/catalog/aliases/chat-ha").json()["deployments"] == ["mock-a", "mock-b"]
        r = c.get("/api/catalog/aliases/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert c.get("/api/catalog/widgets").status_code in (400, 404)
        # a user reads the catalog but may not change it
        r = c.put("/api/catalog/providers/mine", json={"kind": "openai", "base_url": "http://127.0.0.1:9/v1"})
        assert r.status_code == 403


def test_provider_secret_is_a_reference_and_never_returned(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_SECRET", SECRET)
    with gateway.client(gateway.admin_key) as c:
        r = c.put(
            "/api/catalog/providers/vendor",
            json={
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": "env:SOME_SECRET",
                "headers": {"X-Org": SECRET},
            },
        )
        assert r.status_code == 200, r.text
        assert SECRET not in r.text
        body = r.json()
        assert body["api_key_ref"] == "env:SOME_SECRET" and body["api_key_set"] is True
        assert body["header_names"] == ["X-Org"] and body["source"] == "api"
        assert "api_key" not in body and "headers" not in body
        texts = [
            c.get(path).text
            for path in (
                "/api/catalog/providers",
                "/api/catalog/providers/vendor",
                "/api/catalog/deployments",
                "/api/catalog/aliases",
                "/api/audit",
            )
        ]
        for t in texts:
            assert SECRET not in t
        r = c.put(
            "/api/catalog/providers/unset",
            json={
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": "env:AERODROME_TEST_UNSET_VARIABLE",
            },
        )
        assert r.status_code == 200 and r.json()["api_key_set"] is False


def test_raw_secret_is_refused_and_not_echoed(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        r = c.put(
            "/api/catalog/providers/raw",
            json={"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": SECRET},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "env:" in r.json()["error"]["message"]  # it says what to do instead
        assert SECRET not in r.text
        assert "raw" not in {p["name"] for p in c.get("/api/catalog/providers").json()["data"]}
        assert SECRET not in c.get("/api/audit").text


def test_catalog_changes_take_effect_without_restart(gateway: Gateway, upstream: UpstreamServer) -> None:
    user = gateway.make_key("hr", "user")
    with gateway.client(gateway.admin_key) as admin, gateway.client(user) as c:
        assert _chat(c, "chat-new").status_code == 404
        r = admin.put("/api/catalog/providers/mock2", json={"kind": "openai", "base_url": upstream.url})
        assert r.status_code == 200, r.text
        r = admin.put(
            "/api/catalog/deployments/mock-new", json={"provider": "mock2", "model": "gpt-new-2024"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "api" and r.json()["status"] == "approved"
        r = admin.put("/api/catalog/aliases/chat-new", json={"deployments": ["mock-new"]})
        assert r.status_code == 200, r.text
        assert "chat-new" in {m["id"] for m in c.get("/v1/models").json()["data"]}
        r = _chat(c, "chat-new")
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "Echo: hello there"
        assert upstream.requests("/v1/chat/completions")[-1]["body"]["model"] == "gpt-new-2024"
        # replace the alias: now it points to a config deployment
        assert admin.put("/api/catalog/aliases/chat-new", json={"deployments": ["mock-b"]}).status_code == 200
        assert _chat(c, "chat-new").status_code == 200
        assert upstream.requests("/v1/chat/completions")[-1]["body"]["model"] == "gpt-mock-b"
        # delete: alias first (a deployment in use cannot go)
        r = admin.delete("/api/catalog/deployments/mock-new")
        assert r.status_code == 200, r.text  # no alias uses it any more
        r = admin.delete("/api/catalog/providers/mock2")
        assert r.status_code == 200, r.text
        r = admin.delete("/api/catalog/aliases/chat-new")
        assert r.status_code == 200 and r.json() == {"deleted": True, "kind": "alias", "name": "chat-new"}
        r = _chat(c, "chat-new")
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        assert admin.delete("/api/catalog/aliases/chat-new").status_code == 404
    assert gateway.runs(alias="chat-new")  # the calls were recorded


def test_catalog_entries_survive_a_restart(upstream: UpstreamServer, tmp_path: Path) -> None:
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/gw.db")
    with run_gateway(cfg, tmp_path) as gw, gw.client(gw.admin_key) as admin:
        assert (
            admin.put("/api/catalog/aliases/chat-extra", json={"deployments": ["mock-a"]}).status_code == 200
        )
    with run_gateway(cfg, tmp_path) as gw, gw.client(gw.admin_key) as c:
        assert _chat(c, "chat-extra").status_code == 200


def test_invalid_catalog_changes_are_refused(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        before = c.get("/api/audit").json()["data"]
        cases = [
            ("aliases/bad-alias", {"deployments": ["no-such-deployment"]}),
            ("aliases/empty", {"deployments": []}),
            ("deployments/orphan", {"provider": "no-such-provider", "model": "m"}),
            ("deployments/bad-status", {"provider": "mock", "model": "m", "status": "maybe"}),
            ("providers/extra", {"kind": "openai", "surprise": 1}),
            ("aliases/mock-a", {"deployments": ["mock-b"]}),  # same name as a deployment
            # config-file entries are changed in the file
            ("aliases/chat-small", {"deployments": ["mock-b"]}),
            ("deployments/mock-a", {"provider": "mock", "model": "other"}),
            ("providers/mock", {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}),
            ("aliases/renamed", {"name": "other-name", "deployments": ["mock-a"]}),
        ]
        for path, body in cases:
            r = c.put(f"/api/catalog/{path}", json=body)
            assert r.status_code == 400, f"{path}: {r.status_code} {r.text}"
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error" and err["message"], err
        r = c.put("/api/catalog/aliases/chat-small", json={"deployments": ["mock-b"]})
        assert "config" in r.json()["error"]["message"]
        r = c.delete("/api/catalog/aliases/chat-small")
        assert r.status_code in (400, 404), r.text
        assert c.get("/api/catalog/aliases/chat-small").json()["deployments"] == ["mock-a"]
        # a deployment still used by an alias cannot be deleted
        assert (
            c.put("/api/catalog/deployments/d1", json={"provider": "mock", "model": "m"}).status_code == 200
        )
        assert c.put("/api/catalog/aliases/a1", json={"deployments": ["d1"]}).status_code == 200
        r = c.delete("/api/catalog/deployments/d1")
        assert r.status_code == 400 and "a1" in r.json()["error"]["message"], r.text
        after = c.get("/api/audit").json()["data"]
        assert len(after) == len(before) + 2  # only the two accepted changes


def test_blocked_and_deprecated(gateway: Gateway) -> None:
    user = gateway.make_key("hr", "user")
    with gateway.client(gateway.admin_key) as admin, gateway.client(user) as c:
        for name, status in (("dep-blocked", "blocked"), ("dep-old", "deprecated")):
            r = admin.put(
                f"/api/catalog/deployments/{name}",
                json={"provider": "mock", "model": "gpt-mock", "status": status},
            )
            assert r.status_code == 200, r.text
        assert (
            admin.put("/api/catalog/aliases/chat-blocked", json={"deployments": ["dep-blocked"]}).status_code
            == 200
        )
        assert (
            admin.put("/api/catalog/aliases/chat-old", json={"deployments": ["dep-old"]}).status_code == 200
        )
        r = _chat(c, "chat-blocked")
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_blocked", r.text
        r = _chat(c, "chat-old")
        assert r.status_code == 200, r.text
        assert "deprecated" in r.headers["x-aerodrome-warning"]
        assert "x-aerodrome-warning" not in _chat(c, "chat-small").headers
        models = {m["id"] for m in c.get("/v1/models").json()["data"]}
        assert "chat-old" in models and "chat-blocked" not in models
        # blocking a deployment behind a fallback alias skips it
        assert (
            admin.put(
                "/api/catalog/aliases/chat-mixed", json={"deployments": ["dep-blocked", "mock-b"]}
            ).status_code
            == 200
        )
        assert _chat(c, "chat-mixed").status_code == 200
        assert admin.get("/api/catalog/aliases/chat-mixed").json()["usable_deployments"] == ["mock-b"]


def test_every_catalog_change_is_audited_and_the_chain_verifies(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        assert (
            c.put("/api/catalog/providers/p1", json={"kind": "openai", "base_url": "http://x/v1"}).status_code
            == 200
        )
        assert c.put("/api/catalog/deployments/d1", json={"provider": "p1", "model": "m"}).status_code == 200
        assert c.put("/api/catalog/aliases/a1", json={"deployments": ["d1"]}).status_code == 200
        assert (
            c.put("/api/catalog/aliases/a1", json={"deployments": ["d1"], "description": "v2"}).status_code
            == 200
        )
        assert c.delete("/api/catalog/aliases/a1").status_code == 200
        events = c.get("/api/audit").json()["data"]
        catalog_events = [
            (e["action"], e["object_id"], e["actor"])
            for e in reversed(events)
            if e["action"].startswith("catalog.")
        ]
        assert catalog_events == [
            ("catalog.provider.put", "p1", "admin@example.com"),
            ("catalog.deployment.put", "d1", "admin@example.com"),
            ("catalog.alias.put", "a1", "admin@example.com"),
            ("catalog.alias.put", "a1", "admin@example.com"),
            ("catalog.alias.delete", "a1", "admin@example.com"),
        ]
        verify = c.get("/api/audit/verify")
        assert verify.status_code == 200
        assert verify.json()["ok"] is True and verify.json()["events"] >= len(catalog_events)
    with gateway.client(gateway.make_key("hr", "department_admin")) as c:
        assert c.get("/api/audit/verify").status_code == 403


def test_provider_secret_never_in_logs(
    gateway: Gateway,
    upstream_keyed: UpstreamServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KEYED_SECRET", UPSTREAM_KEY)
    caplog.set_level(logging.DEBUG)
    user = gateway.make_key("hr", "user")
    with gateway.client(gateway.admin_key) as admin, gateway.client(user) as c:
        assert (
            admin.put(
                "/api/catalog/providers/keyed",
                json={"kind": "openai", "base_url": upstream_keyed.url, "api_key": "env:KEYED_SECRET"},
            ).status_code
            == 200
        )
        assert (
            admin.put(
                "/api/catalog/deployments/keyed-d",
                json={"provider": "keyed", "model": "gpt-mock", "timeout_s": 2},
            ).status_code
            == 200
        )
        assert (
            admin.put("/api/catalog/aliases/chat-keyed", json={"deployments": ["keyed-d"]}).status_code == 200
        )
        ok = _chat(c, "chat-keyed")
        assert ok.status_code == 200, ok.text  # the secret reached the upstream
        seen = upstream_keyed.requests("/v1/chat/completions")[-1]["headers"]
        assert seen.get("authorization") == f"Bearer {UPSTREAM_KEY}"
        upstream_keyed.fault(status=500, message="upstream exploded", times=10)
        failed = _chat(c, "chat-keyed")
        assert failed.status_code == 502, failed.text
        upstream_keyed.fault(reset=True, times=10)
        assert _chat(c, "chat-keyed").status_code == 502
        # a wrong secret: the upstream refuses it
        monkeypatch.setenv("KEYED_SECRET", "sk-wrong-" + SECRET)
        assert (
            admin.put(
                "/api/catalog/providers/keyed",
                json={
                    "kind": "openai",
                    "base_url": upstream_keyed.url,
                    "api_key": "env:KEYED_SECRET",
                    "headers": {"X-Debug": "1"},
                },
            ).status_code
            == 200
        )
        refused = _chat(c, "chat-keyed")
        assert refused.status_code >= 400
        for r in (ok, failed, refused):
            assert UPSTREAM_KEY not in r.text and SECRET not in r.text
    gateway.flush()
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert any(r.name.startswith("aerodrome") and r.levelno >= logging.WARNING for r in caplog.records), (
        "expected the failing calls to be logged"
    )
    assert UPSTREAM_KEY not in repr(gateway.runs(alias="chat-keyed"))
    assert UPSTREAM_KEY not in logged and SECRET not in logged
    for rec in caplog.records:
        assert UPSTREAM_KEY not in repr(vars(rec)) and SECRET not in repr(vars(rec))


def test_file_secret_references(gateway: Gateway, tmp_path: Path) -> None:
    secret_file = tmp_path / "vendor.key"
    secret_file.write_text(SECRET + "\n")
    with gateway.client(gateway.admin_key) as c:
        base = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}
        r = c.put("/api/catalog/providers/filed", json={**base, "api_key": f"file:{secret_file}"})
        assert r.status_code == 200, r.text
        assert r.json()["api_key_set"] is True and SECRET not in r.text
        # an unreadable file is refused up front, and the catalog stays readable
        r = c.put("/api/catalog/providers/broken", json={**base, "api_key": "file:/nonexistent/vendor.key"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "api_key"
        providers = c.get("/api/catalog/providers")
        assert providers.status_code == 200, providers.text
        assert "broken" not in {p["name"] for p in providers.json()["data"]}
        # a file that disappears later is reported, not a 500
        secret_file.unlink()
        providers = c.get("/api/catalog/providers")
        assert providers.status_code == 200, providers.text
        filed = next(p for p in providers.json()["data"] if p["name"] == "filed")
        assert filed["api_key_set"] is False and "cannot be read" in filed["api_key_problem"]
