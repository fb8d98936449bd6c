"""The permission table, walked end to end through the real management endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aerodrome.config import ROLES
from aerodrome.errors import Forbidden
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.storage.tables import jobs
from tests.harness import Gateway

_WALK_SPEC = {
    "id": "walk-spec",
    "title": "Walk",
    "departments": ["hr"],
    "inputs": {"question": {"type": "string", "required": True, "max_length": 200}},
    "prompt": "Question: {{ question }}",
    "model": "chat-local",
}


def _request_for(action: str, role: str) -> tuple[str, str, dict[str, Any] | None]:
    """The real endpoint that needs ``action``, with a body the caller's scope could accept."""
    return {
        "departments.read": ("GET", "/api/departments", None),
        "departments.write": ("POST", "/api/departments", {"id": f"new-{role.replace('_', '-')}"}),
        "users.read": ("GET", "/api/users", None),
        "users.write": (
            "POST",
            "/api/users",
            {"email": f"{role}@walk.example", "department": "hr", "roles": ["user"]},
        ),
        "keys.read": ("GET", "/api/keys", None),
        # a role may always put its own role on a key (may_grant), in its own department
        "keys.write": ("POST", "/api/keys", {"department": "hr", "role": role, "name": f"walk-{role}"}),
        "catalog.read": ("GET", "/api/catalog/providers", None),
        "catalog.write": (
            "PUT",
            f"/api/catalog/providers/walk-{role}",
            {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
        ),
        "runs.read": ("GET", "/api/runs", None),
        "budgets.read": ("GET", "/api/budgets", None),
        "audit.read": ("GET", "/api/audit", None),
        "collections.read": ("GET", "/api/collections", None),
        # a collection read by the caller's department alone: what a department scope may manage
        "collections.write": (
            "POST",
            "/api/collections",
            {"name": f"walk-{role.replace('_', '-')}", "readers": {"departments": ["hr"]}},
        ),
        "usecases.read": ("GET", "/api/usecases", None),
        # validating a spec is a builder's action; it stores nothing
        "usecases.write": ("POST", "/api/usecases/validate", {"spec": _WALK_SPEC}),
        "reviews.read": ("GET", "/api/reviews", None),
        # claim the oldest pending item in scope (none here: 200 with no item)
        "reviews.decide": ("POST", "/api/reviews/next", None),
        "feedback.read": ("GET", "/api/feedback/export", None),
        # gate checks of the hr use case made by the walk (a dry run changes nothing)
        "usecases.advance": ("POST", "/api/usecases/walk-live/transitions", {"dry_run": True}),
        "usecases.decide": (
            "POST",
            "/api/usecases/walk-live/transitions",
            {"to": "retired", "decision": "stop", "dry_run": True},
        ),
        "proposals.read": ("GET", "/api/proposals", None),
        "evals.read": ("GET", "/api/evals/runs", None),
        # the walk's use case has no suite: allowed callers get 404, not 403
        "evals.run": ("POST", "/api/evals/runs", {"usecase_id": "walk-live"}),
        "proposals.write": (
            "POST",
            "/api/proposals",
            {"title": f"walk {role}", "problem": "p", "value": 3, "complexity": 3},
        ),
        # a dry run plans the attacks and starts nothing (a real run would hold the use case's job slot)
        "redteam.run": (
            "POST",
            "/api/usecases/walk-live/redteam",
            {"sets": "pii", "limit": 1, "dry_run": True},
        ),
        "redteam.read": ("GET", "/api/usecases/walk-live/redteam", None),
        "alerts.read": ("GET", "/api/alerts", None),
        # acknowledging no alert changes nothing
        "alerts.acknowledge": ("POST", "/api/alerts/acknowledge", {"ids": []}),
        "jobs.read": ("GET", "/api/jobs", None),
        # a failed job made by the walk (only one role may retry it, once)
        "jobs.write": ("POST", "/api/jobs/walk-failed/retry", None),
    }[action]


def test_every_action_has_an_endpoint_in_the_walk() -> None:
    assert {a for a in perm.ACTIONS} == {
        "departments.read",
        "departments.write",
        "users.read",
        "users.write",
        "keys.read",
        "keys.write",
        "catalog.read",
        "catalog.write",
        "runs.read",
        "budgets.read",
        "audit.read",
        "collections.read",
        "collections.write",
        "usecases.read",
        "usecases.write",
        "reviews.read",
        "reviews.decide",
        "feedback.read",
        "usecases.advance",
        "usecases.decide",
        "proposals.read",
        "proposals.write",
        "evals.read",
        "evals.run",
        "redteam.run",
        "redteam.read",
        "alerts.read",
        "alerts.acknowledge",
        "jobs.read",
        "jobs.write",
    }, "a new action needs an endpoint in _request_for"
    for role, action in perm.PERMISSIONS:
        assert role in ROLES and action in perm.ACTIONS


def test_walk_the_whole_permission_table(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        live = {**_WALK_SPEC, "id": "walk-live", "departments": ["hr"]}
        assert c.post("/api/usecases", json={"spec": live}).status_code == 201
    with gateway.runtime.engine.begin() as conn:
        conn.execute(
            jobs.insert().values(
                id="walk-failed",
                kind="rollup",
                target="walk",
                status="failed",
                message="failed",
                created_by="walk",
                created_at=datetime.now(UTC),
                attempts=1,
                max_attempts=1,
            )
        )
    keys = {role: gateway.make_key("hr", role, name=f"walker-{role}") for role in ROLES}
    checked = 0
    for role in ROLES:
        with gateway.client(keys[role], timeout=60) as c:  # the first proposal loads MiniLM
            for action in perm.ACTIONS:
                method, path, body = _request_for(action, role)
                r = c.request(method, path, json=body)
                allowed = (role, action) in perm.PERMISSIONS
                if allowed and action == "evals.run":  # past the permission check, the missing suite
                    assert r.status_code == 404, f"{role} {action}: {r.status_code} {r.text}"
                    assert r.json()["error"]["code"] == "eval_suite_not_found"
                elif allowed:
                    assert r.status_code != 403, f"{role} may {action} but got {r.status_code}: {r.text}"
                    assert r.status_code < 400, f"{role} {action}: {r.status_code} {r.text}"
                else:
                    assert r.status_code == 403, f"{role} may not {action} but got {r.status_code}: {r.text}"
                    assert r.json()["error"]["code"] == "permission_denied"
                checked += 1
    assert checked == len(ROLES) * len(perm.ACTIONS)


def _chat(gateway: Gateway, key: str) -> str:
    with gateway.client(key) as c:
        r = c.post(
            "/v1/chat/completions",
            json={"model": "chat-small", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
        return r.headers["x-aerodrome-run-id"]


def test_department_scoping(gateway: Gateway) -> None:
    hr_admin = gateway.make_key("hr", "department_admin", name="hr-admin")
    auditor = gateway.make_key("platform", "auditor", name="auditor")
    fin_user = gateway.make_key("finance", "user", name="fin-user")
    hr_user = gateway.make_key("hr", "user", name="hr-user")
    with gateway.client(gateway.admin_key) as c:
        for email, dept in (("a@hr.example", "hr"), ("b@fin.example", "finance")):
            assert c.post("/api/users", json={"email": email, "department": dept}).status_code == 201
    fin_run = _chat(gateway, fin_user)
    hr_run = _chat(gateway, hr_user)
    gateway.flush()

    with gateway.client(hr_admin) as c:
        keys = c.get("/api/keys").json()["data"]
        assert keys and {k["department_id"] for k in keys} == {"hr"}
        users = c.get("/api/users").json()["data"]
        assert [u["email"] for u in users] == ["a@hr.example"]
        runs = c.get("/api/runs").json()
        assert [r["id"] for r in runs["data"]] == [hr_run] and runs["total"] == 1
        # asking for another department's data by filter does not widen the scope
        assert c.get("/api/runs", params={"department": "finance"}).json()["data"] == []
        assert c.get("/api/keys", params={"department": "finance"}).json()["data"] == []
        depts = c.get("/api/departments").json()["data"]
        assert [d["id"] for d in depts] == ["hr"]
        r = c.post("/api/keys", json={"department": "finance", "role": "user"})
        assert r.status_code == 403, r.text
        r = c.post("/api/users", json={"email": "x@fin.example", "department": "finance"})
        assert r.status_code == 403, r.text
        assert c.get(f"/api/runs/{fin_run}").status_code == 404
        assert c.get(f"/api/runs/{hr_run}").status_code == 200

    with gateway.client(auditor) as c:
        keys = c.get("/api/keys").json()["data"]
        assert {"hr", "finance", "platform"} <= {k["department_id"] for k in keys}
        assert {u["email"] for u in c.get("/api/users").json()["data"]} >= {"a@hr.example", "b@fin.example"}
        assert {r["id"] for r in c.get("/api/runs").json()["data"]} == {hr_run, fin_run}
        assert c.post("/api/keys", json={"department": "hr", "role": "user"}).status_code == 403

    with gateway.client(hr_user) as c:
        assert [r["id"] for r in c.get("/api/runs").json()["data"]] == [hr_run]
        assert c.get(f"/api/runs/{fin_run}").status_code == 404
        # its own key only (not the other hr keys)
        assert [k["prefix"] for k in c.get("/api/keys").json()["data"]] == [hr_user[3:13]]
        created = c.post("/api/keys", json={"department": "hr", "role": "user", "name": "mine"})
        assert created.status_code == 201, created.text
        prefixes = [k["prefix"] for k in c.get("/api/keys").json()["data"]]
        assert prefixes == [hr_user[3:13], created.json()["prefix"]]
        # a user cannot revoke somebody else's key
        admin_made = c.delete(f"/api/keys/{hr_admin[3:13]}")  # the key's prefix
        assert admin_made.status_code == 403, admin_made.text


def test_own_key_scope_does_not_leak_across_same_named_keys(gateway: Gateway) -> None:
    """Two service keys with the same name in different departments are different principals."""
    hr_bot = gateway.make_key("hr", "user", name="bot")
    fin_bot = gateway.make_key("finance", "user", name="bot")
    with gateway.client(fin_bot) as c:
        made = c.post("/api/keys", json={"department": "finance", "role": "user", "name": "fin-child"})
        assert made.status_code == 201, made.text
    with gateway.client(hr_bot) as c:
        seen = [k["name"] for k in c.get("/api/keys").json()["data"]]
        assert seen == ["bot"], f"hr's bot sees finance's keys: {seen}"
        r = c.delete(f"/api/keys/{made.json()['prefix']}")
        assert r.status_code in (403, 404), r.text


def test_privilege_escalation_is_refused(gateway: Gateway) -> None:
    hr_admin = gateway.make_key("hr", "department_admin")
    user = gateway.make_key("hr", "user")
    builder = gateway.make_key("hr", "builder")
    with gateway.client(hr_admin) as c:
        for role in ("platform_admin", "auditor"):
            r = c.post("/api/keys", json={"department": "hr", "role": role})
            assert r.status_code == 403, r.text
            r = c.post(
                "/api/users", json={"email": f"{role}@esc.example", "department": "hr", "roles": [role]}
            )
            assert r.status_code == 403, r.text
        assert c.post("/api/keys", json={"department": "hr", "role": "builder"}).status_code == 201
    with gateway.client(user) as c:
        for role in ("builder", "department_admin", "platform_admin"):
            assert c.post("/api/keys", json={"department": "hr", "role": role}).status_code == 403
    with gateway.client(builder) as c:
        assert c.post("/api/keys", json={"department": "hr", "role": "platform_admin"}).status_code == 403
        assert c.post("/api/keys", json={"department": "finance", "role": "builder"}).status_code == 403
    # nothing was created by the refused attempts
    with gateway.client(gateway.admin_key) as c:
        roles = [k["role"] for k in c.get("/api/keys").json()["data"]]
    assert roles.count("platform_admin") == 1  # the harness's admin key only
    assert "auditor" not in roles


# ---------------------------------------------------------------- unit tests of the table


def _p(*roles: str, dept: str = "hr") -> Principal:
    return Principal(name="someone@example.com", department_id=dept, roles=frozenset(roles))


def test_scope_for_takes_the_widest_scope_of_several_roles() -> None:
    assert perm.scope_for(_p("user"), "runs.read") == "own"
    assert perm.scope_for(_p("builder"), "runs.read") == "department"
    assert perm.scope_for(_p("user", "builder"), "runs.read") == "department"
    assert perm.scope_for(_p("user", "auditor"), "runs.read") == "all"
    assert perm.scope_for(_p("user"), "audit.read") is None
    assert perm.scope_for(_p(), "catalog.read") is None
    for action in perm.ACTIONS:
        assert perm.scope_for(_p("platform_admin"), action) == "all"


def test_require_raises_forbidden_or_returns_scope() -> None:
    assert perm.require(_p("department_admin"), "keys.write") == "department"
    with pytest.raises(Forbidden) as exc:
        perm.require(_p("reviewer"), "keys.write")
    assert exc.value.status == 403 and "keys write" in exc.value.message
    with pytest.raises(ValueError):
        perm.require(_p("platform_admin"), "keys.destroy")


def test_check_department() -> None:
    perm.check_department(_p("auditor"), "all", "finance")
    perm.check_department(_p("department_admin"), "department", "hr")
    with pytest.raises(Forbidden):
        perm.check_department(_p("department_admin"), "department", "finance")


def test_may_grant() -> None:
    admin, dept_admin, user, builder = _p("platform_admin"), _p("department_admin"), _p("user"), _p("builder")
    assert all(perm.may_grant(admin, r) for r in ROLES)
    assert perm.may_grant(dept_admin, "builder") and perm.may_grant(dept_admin, "user")
    assert not perm.may_grant(dept_admin, "platform_admin")
    assert not perm.may_grant(dept_admin, "auditor")
    assert perm.may_grant(user, "user")
    assert not perm.may_grant(user, "builder")
    assert perm.may_grant(builder, "builder")
    assert perm.may_grant(builder, "user")  # a key for the tool a use case is wired into
    assert not perm.may_grant(builder, "department_admin")
    assert not perm.may_grant(builder, "reviewer")
