"""The management API: OpenAPI, runs with filters and isolation, departments, users, budgets, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer


def _assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


def _chat(c: httpx.Client, model: str = "chat-small") -> httpx.Response:
    return c.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )


def test_openapi_lists_the_gateway_and_management_routes(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        r = c.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    spec = r.json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "Aerodrome"
    paths = spec["paths"]
    for path in (
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/models",
        "/api/keys",
        "/api/keys/{key_ref}",
        "/api/departments",
        "/api/users",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/budgets",
        "/api/audit",
        "/api/audit/verify",
        "/api/catalog/{kind}",
        "/api/catalog/{kind}/{name}",
    ):
        assert path in paths, path
    assert "post" in paths["/v1/chat/completions"] and "requestBody" in paths["/v1/chat/completions"]["post"]
    assert {"get", "post"} <= set(paths["/api/keys"])
    assert {"get", "put", "delete"} <= set(paths["/api/catalog/{kind}/{name}"])


def test_runs_filters_paging_and_isolation(gateway: Gateway, upstream: UpstreamServer) -> None:
    hr = gateway.make_key("hr", "user", name="hr-1")
    hr2 = gateway.make_key("hr", "user", name="hr-2")
    fin = gateway.make_key("finance", "user", name="fin")
    t0 = datetime.now().astimezone()
    with gateway.client(hr) as c:
        for _ in range(3):
            assert _chat(c).status_code == 200
        assert _chat(c, "chat-local").status_code == 200
        upstream.fault(status=500, times=10)
        assert _chat(c).status_code == 502
        upstream.reset()
    with gateway.client(hr2) as c:
        assert _chat(c).status_code == 200
    time.sleep(0.05)
    t1 = datetime.now().astimezone()
    time.sleep(0.05)
    with gateway.client(fin) as c:
        assert _chat(c).status_code == 200
        assert _chat(c, "chat-ha").status_code == 200

    everything = gateway.runs()
    assert len(everything) == 8
    created = [r["created_at"] for r in everything]
    assert created == sorted(created, reverse=True)  # newest first
    with gateway.client(gateway.admin_key) as c:

        def get(**params: object) -> dict[str, object]:
            r = c.get("/api/runs", params=params)
            assert r.status_code == 200, r.text
            return dict(r.json())

        assert get()["total"] == 8
        hr_runs = get(department="hr")
        assert hr_runs["total"] == 6 and {r["department_id"] for r in hr_runs["data"]} == {"hr"}
        assert get(department="finance")["total"] == 2
        assert get(department="nowhere") == {"object": "list", "total": 0, "data": []}
        assert get(alias="chat-local")["total"] == 1
        assert get(alias="chat-ha")["total"] == 1
        errors = get(status="error")
        assert (
            errors["total"] == 1
            and errors["data"][0]["error_code"]
            and errors["data"][0]["http_status"] == 502
        )
        assert get(status="ok")["total"] == 7
        assert get(department="hr", alias="chat-small", status="ok")["total"] == 4
        assert get(until=t1.isoformat())["total"] == 6
        assert get(since=t1.isoformat())["total"] == 2
        assert get(since=t0.isoformat(), until=t1.isoformat())["total"] == 6
        assert get(since=(t0 - timedelta(days=1)).isoformat(), until=t0.isoformat())["total"] == 0
        # paging: total is the whole match, data is the page
        page1, page2, page3 = get(limit=3), get(limit=3, offset=3), get(limit=3, offset=6)
        assert page1["total"] == page2["total"] == page3["total"] == 8
        ids = [r["id"] for p in (page1, page2, page3) for r in p["data"]]  # type: ignore[attr-defined]
        assert ids == [r["id"] for r in everything] and len(set(ids)) == 8
        assert get(offset=100)["data"] == []
        _assert_error(c.get("/api/runs", params={"limit": 0}), 400)
        _assert_error(c.get("/api/runs", params={"limit": 5000}), 400)
        _assert_error(c.get("/api/runs", params={"since": "yesterday-ish"}), 400)
        key_id = next(k["id"] for k in c.get("/api/keys").json()["data"] if k["name"] == "hr-2")
        assert get(key_id=key_id)["total"] == 1

    fin_run = next(r for r in everything if r["department_id"] == "finance")
    hr_run = next(r for r in everything if r["department_id"] == "hr")
    with gateway.client(hr) as c:  # a user: its own runs only
        mine = c.get("/api/runs").json()
        assert mine["total"] == 5
        assert c.get("/api/runs", params={"department": "finance"}).json()["total"] == 0
        _assert_error(c.get(f"/api/runs/{fin_run['id']}"), 404, "run_not_found")
    with gateway.client(hr2) as c:
        assert c.get("/api/runs").json()["total"] == 1
    with gateway.client(gateway.make_key("hr", "builder")) as c:  # department scope
        assert c.get("/api/runs").json()["total"] == 6
        run = c.get(f"/api/runs/{hr_run['id']}")
        assert run.status_code == 200 and run.json()["id"] == hr_run["id"]
        _assert_error(c.get(f"/api/runs/{fin_run['id']}"), 404, "run_not_found")
        _assert_error(c.get("/api/runs/does-not-exist"), 404, "run_not_found")


def test_departments_and_users(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        r = c.post(
            "/api/departments",
            json={"id": "legal", "name": "Legal", "eligible_users": 7, "content_logging": "off"},
        )
        assert r.status_code == 201, r.text
        depts = {d["id"]: d for d in c.get("/api/departments").json()["data"]}
        assert {"platform", "hr", "finance", "legal"} <= set(depts)
        assert (depts["legal"]["name"], depts["legal"]["eligible_users"]) == ("Legal", 7)
        _assert_error(c.post("/api/departments", json={"id": "Bad Id!"}), 400)
        _assert_error(c.post("/api/departments", json={"id": "x", "content_logging": "sometimes"}), 400)

        r = c.post(
            "/api/users",
            json={"email": "lee@example.com", "name": "Lee", "department": "legal", "roles": ["builder"]},
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        users = {u["email"]: u for u in c.get("/api/users").json()["data"]}
        assert users["lee@example.com"]["id"] == user_id
        assert users["lee@example.com"]["roles"] == ["builder"]
        _assert_error(
            c.post("/api/users", json={"email": "z@example.com", "department": "legal", "roles": ["wizard"]}),
            400,
        )
        r = c.post("/api/users", json={"email": "nobody@example.com", "department": "no-such-dept"})
        assert r.status_code in (400, 404), r.text
        assert "nobody@example.com" not in c.get("/api/users").text

        # a key for the new user in the new department works, and its runs are the user's
        r = c.post("/api/keys", json={"department": "legal", "role": "builder", "user": "lee@example.com"})
        assert r.status_code == 201, r.text
        assert r.json()["user_id"] == user_id
        _assert_error(c.post("/api/keys", json={"department": "hr", "user": "lee@example.com"}), 400)
        _assert_error(
            c.post("/api/keys", json={"department": "legal", "user": "ghost@example.com"}),
            404,
            "user_not_found",
        )
        _assert_error(c.post("/api/keys", json={"department": "atlantis"}), 404, "department_not_found")
    with gateway.client(r.json()["key"]) as c:
        assert _chat(c).status_code == 200
    (run,) = gateway.runs(department="legal")
    assert run["user_id"] == user_id and run["principal"] == "lee@example.com"


def test_budgets(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        r = c.post(
            "/api/keys", json={"department": "hr", "role": "user", "budget": {"usd": 3, "period": "day"}}
        )
        assert r.status_code == 201, r.text
        key_id = r.json()["id"]
        data = c.get("/api/budgets").json()["data"]
        (mine,) = [b for b in data if b["scope"] == "key" and b["id"] == key_id]
        assert (mine["usd"], mine["period"], mine["spent"], mine["reserved"]) == (3, "day", 0, 0)
        keyed = c.get("/api/budgets", params={"scope": "key"}).json()["data"]
        assert keyed and {b["scope"] for b in keyed} == {"key"}
        _assert_error(c.post("/api/keys", json={"department": "hr", "budget": {"usd": -1}}), 400)
    with gateway.client(gateway.make_key("hr", "user")) as c:
        _assert_error(c.get("/api/budgets"), 403, "permission_denied")


def test_department_budgets_are_scoped(upstream: UpstreamServer, tmp_path: Path) -> None:
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/gw.db")
    cfg["departments"][1]["budget"] = {"usd": 50, "period": "month"}  # hr
    cfg["departments"][2]["budget"] = {"usd": 20, "period": "day"}  # finance
    with run_gateway(cfg, tmp_path) as gw:
        with gw.client(gw.make_key("hr", "user")) as c:
            assert _chat(c).status_code == 200
        gw.flush()
        with gw.client(gw.admin_key) as c:
            data = {(b["scope"], b["id"]): b for b in c.get("/api/budgets").json()["data"]}
            assert {("department", "hr"), ("department", "finance")} <= set(data)
            assert data[("department", "hr")]["spent"] > 0 and data[("department", "finance")]["spent"] == 0
        with gw.client(gw.make_key("hr", "department_admin")) as c:
            data = c.get("/api/budgets").json()["data"]
            assert [(b["scope"], b["id"], b["usd"]) for b in data] == [("department", "hr", 50)]
        with gw.client(gw.make_key("finance", "approver")) as c:  # approvers read every budget
            assert len(c.get("/api/budgets").json()["data"]) >= 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/keys"),
        ("POST", "/api/keys"),
        ("DELETE", "/api/keys/abc"),
        ("GET", "/api/departments"),
        ("POST", "/api/departments"),
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("GET", "/api/runs"),
        ("GET", "/api/runs/abc"),
        ("GET", "/api/budgets"),
        ("GET", "/api/audit"),
        ("GET", "/api/audit/verify"),
        ("GET", "/api/catalog/aliases"),
        ("PUT", "/api/catalog/aliases/x"),
        ("DELETE", "/api/catalog/aliases/x"),
    ],
)
def test_management_endpoints_need_a_key(gateway: Gateway, method: str, path: str) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        r = c.request(method, path, json={} if method in ("POST", "PUT") else None)
    err = _assert_error(r, 401, "missing_api_key")
    assert err["type"] == "authentication_error"


def test_unknown_endpoint_and_method(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        _assert_error(c.get("/api/nothing-here"), 404, "unknown_endpoint")
        _assert_error(c.get("/v1/nothing"), 404, "unknown_endpoint")
        r = c.patch("/api/keys")
        assert r.status_code == 405
        _assert_error(r, 405)


def test_invalid_key_bodies(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        err = _assert_error(
            c.post("/api/keys", json={"department": "hr", "rpm": "lots"}), 400, "invalid_request"
        )
        assert err["param"] == "rpm"
        err = _assert_error(c.post("/api/keys", json={"department": "hr", "aliases": "chat-small"}), 400)
        assert err["param"] == "aliases"
        err = _assert_error(c.post("/api/keys", json={"department": "hr", "expires_at": "next tuesday"}), 400)
        assert err["param"] == "expires_at"
        err = _assert_error(c.post("/api/keys", json={"role": "user"}), 400)
        assert err["param"] == "department"
        err = _assert_error(c.post("/api/keys", json={"department": "hr", "role": "emperor"}), 400)
        assert err["param"] == "role"
        _assert_error(
            c.post("/api/keys", content=b"{not json", headers={"content-type": "application/json"}), 400
        )
        _assert_error(c.post("/api/keys", json=["department", "hr"]), 400)
        before = len(c.get("/api/keys").json()["data"])
        assert before == 1  # none of the bad requests created a key


def test_management_api_refuses_oversize_bodies(upstream: UpstreamServer, tmp_path: Path) -> None:
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/big.db")
    cfg["server"]["max_body_bytes"] = 2048
    with run_gateway(cfg, tmp_path) as gw, gw.client(gw.admin_key) as c:
        big = {"department": "hr", "role": "user", "name": "x" * 5000}
        r = c.post("/api/keys", json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it streams
            yield b'{"department": "hr", "name": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        r = c.post("/api/keys", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.post("/api/keys", json={"department": "hr", "role": "user"}).status_code == 201
