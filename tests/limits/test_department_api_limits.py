"""Limits and budgets of departments created through the API are enforced like those of the config file."""

from __future__ import annotations

from tests.harness import Gateway

CHAT = {"model": "chat-small", "messages": [{"role": "user", "content": "hello"}]}


def test_department_rpm_from_api_is_enforced(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as admin:
        r = admin.post("/api/departments", json={"id": "legal", "name": "Legal", "limits": {"rpm": 1}})
        assert r.status_code == 201, r.text
        listed = {d["id"]: d for d in admin.get("/api/departments").json()["data"]}
        assert listed["legal"]["limits"] == {"rpm": 1, "tpm": None}
    key = gateway.make_key("legal")
    with gateway.client(key) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        refused = c.post("/v1/chat/completions", json=CHAT)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"


def test_department_budget_from_api_is_enforced(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as admin:
        r = admin.post("/api/departments", json={"id": "legal", "budget": {"usd": 0.00002, "period": "day"}})
        assert r.status_code == 201, r.text
    with gateway.client(gateway.make_key("legal")) as c:
        statuses = [
            c.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5}).status_code for _ in range(6)
        ]
    assert 429 in statuses, statuses
    spent = sum(r["cost_usd"] for r in gateway.runs(department="legal") if r["status"] == "ok")
    assert spent <= 0.00002


def test_key_budget_soft_threshold_is_kept(gateway: Gateway) -> None:
    key = gateway.make_key("hr", budget={"usd": 1.0, "period": "month", "soft_pct": 0.000001})
    with gateway.client(key) as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert "x-aerodrome-budget-warning" in r.headers
