"""Budgets through the running gateway: concurrency, soft warnings, departments, aliases, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.helpers import assert_error, chat_body, config, gateway_with
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"
# "hi" with max_tokens=5 reserves (7 prompt + 5 * 2) / 1e6 = $0.000017 at admission and
# costs (1 + 2 * 2) / 1e6 = $0.000005 once the mock answered "Echo: hi".
SMALL = chat_body(content="hi", max_tokens=5)
TINY_BUDGET = 0.0001


def _departments(**budgets: dict[str, Any]) -> list[dict[str, Any]]:
    deps = config(None, Path("/"))["departments"]
    for d in deps:
        if d["id"] in budgets:
            d["budget"] = budgets[d["id"]]
    return list(deps)


async def _burst(url: str, key: str, n: int, body: dict[str, Any]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=20) as c:
        return list(await asyncio.gather(*(c.post(URL, json=body) for _ in range(n))))


def test_concurrent_requests_cannot_overspend_a_key_budget(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    upstream.fault(delay_s=0.3, times=40)  # keep the admitted ones in flight while the rest arrive
    key = gateway.make_key("hr", budget={"usd": TINY_BUDGET, "period": "day"})
    answers = asyncio.run(_burst(gateway.url, key, 40, SMALL))
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert ok and refused
    for r in refused:
        assert_error(r, 429, "budget_exceeded")
        assert int(r.headers["retry-after"]) >= 1
    assert len(ok) <= 6  # $0.0001 holds at most 5 worst-case reservations of $0.000017 at once
    assert upstream.stats()["requests"] == len(ok)
    runs = gateway.runs()
    assert len(runs) == 40
    spent = sum(r["cost_usd"] for r in runs if r["status"] == "ok")
    assert 0 < spent <= TINY_BUDGET
    assert {r["id"] for r in runs} == {r.headers["x-aerodrome-run-id"] for r in answers}
    with gateway.client(gateway.admin_key) as admin:
        budgets = admin.get("/api/budgets", params={"scope": "key"}).json()["data"]
    (mine,) = [b for b in budgets if b["usd"] == TINY_BUDGET]
    assert mine["reserved"] == 0
    assert mine["spent"] == pytest.approx(spent)


def test_budget_soft_threshold_sends_a_warning_header(upstream: UpstreamServer, tmp_path: Path) -> None:
    depts = _departments(finance={"usd": TINY_BUDGET, "period": "day", "soft_pct": 0.5})
    with gateway_with(upstream.url, tmp_path, departments=depts) as gw:
        key = gw.make_key("finance")
        seen: list[httpx.Response] = []
        with gw.client(key) as c:
            for _ in range(40):
                r = c.post(URL, json=SMALL)
                seen.append(r)
                if r.status_code != 200:
                    break
    assert "x-aerodrome-budget-warning" not in seen[0].headers
    warned = [r for r in seen if "x-aerodrome-budget-warning" in r.headers]
    assert warned and all(r.status_code == 200 for r in warned)
    assert "department finance" in warned[0].headers["x-aerodrome-budget-warning"]
    first = seen.index(warned[0])
    assert all("x-aerodrome-budget-warning" in r.headers for r in seen[first:-1])  # and stays
    assert_error(seen[-1], 429, "budget_exceeded")
    assert "department 'finance'" in seen[-1].json()["error"]["message"]


def test_department_budget_covers_every_key_of_the_department(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    depts = _departments(hr={"usd": TINY_BUDGET, "period": "month"})
    with gateway_with(upstream.url, tmp_path, departments=depts) as gw:
        keys = [gw.make_key("hr") for _ in range(3)]
        codes: list[int] = []
        for i in range(60):
            with gw.client(keys[i % 3]) as c:
                r = c.post(URL, json=SMALL)
            codes.append(r.status_code)
            if r.status_code == 429:
                assert_error(r, 429, "budget_exceeded")
                break
        assert codes[-1] == 429
        with gw.client(gw.make_key("platform")) as c:  # another department is not affected
            assert c.post(URL, json=SMALL).status_code == 200
        spent = sum(r["cost_usd"] for r in gw.runs(department="hr"))
        assert spent <= TINY_BUDGET


def test_alias_budget(upstream: UpstreamServer, tmp_path: Path) -> None:
    aliases = config(upstream.url, tmp_path)["aliases"]
    for a in aliases:
        if a["name"] == "chat-small":
            a["budget"] = {"usd": TINY_BUDGET, "period": "day"}
    with gateway_with(upstream.url, tmp_path, aliases=aliases) as gw:
        key = gw.make_key("hr")
        with gw.client(key) as c:
            for _ in range(60):
                r = c.post(URL, json=SMALL)
                if r.status_code != 200:
                    break
            err = assert_error(r, 429, "budget_exceeded")
            assert "alias 'chat-small'" in err["message"]
            assert c.post(URL, json=chat_body("chat-ha", content="hi", max_tokens=5)).status_code == 200
        assert sum(r["cost_usd"] for r in gw.runs(alias="chat-small")) <= TINY_BUDGET


def test_budgets_survive_a_restart(upstream: UpstreamServer, tmp_path: Path) -> None:
    depts = _departments(hr={"usd": 1.0, "period": "month"})
    with gateway_with(upstream.url, tmp_path, departments=depts) as gw:
        with gw.client(gw.admin_key) as admin:
            created = admin.post(
                "/api/keys",
                json={"department": "hr", "role": "user", "budget": {"usd": 0.5, "period": "day"}},
            ).json()
        with gw.client(created["key"]) as c:
            for _ in range(5):
                assert c.post(URL, json=chat_body(content="a longer question " * 20)).status_code == 200
        spent = sum(r["cost_usd"] for r in gw.runs())
        assert spent > 0
    with gateway_with(upstream.url, tmp_path, departments=depts) as gw:  # same database file
        with gw.client(gw.admin_key) as admin:
            budgets = {(b["scope"], b["id"]): b for b in admin.get("/api/budgets").json()["data"]}
        assert budgets[("department", "hr")]["spent"] == pytest.approx(spent, rel=1e-6)
        assert budgets[("key", created["id"])]["spent"] == pytest.approx(spent, rel=1e-6)


def test_department_rate_limit_is_shared_by_its_keys(upstream: UpstreamServer, tmp_path: Path) -> None:
    depts = config(None, tmp_path)["departments"]
    for d in depts:
        if d["id"] == "finance":
            d["limits"] = {"rpm": 3}
    with gateway_with(upstream.url, tmp_path, departments=depts) as gw:
        keys = [gw.make_key("finance") for _ in range(2)]
        codes = []
        for i in range(4):
            with gw.client(keys[i % 2]) as c:
                r = c.post(URL, json=SMALL)
                codes.append(r.status_code)
        assert codes == [200, 200, 200, 429]
        err = assert_error(r, 429, "rate_limited")
        assert "department 'finance'" in err["message"] and "retry-after" in r.headers
        with gw.client(gw.make_key("hr")) as c:
            assert c.post(URL, json=SMALL).status_code == 200
