"""Stages, gates, locked criteria and tasks through the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer


def _spec(**kw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": "triage",
        "title": "Ticket triage",
        "departments": ["hr"],
        "inputs": {"ticket": {"type": "string", "required": True}},
        "prompt": "{{ ticket }}",
        "model": "chat-local",
        "owners": {"technical": "t@example.com", "workflow": "w@example.com"},
        "data_class": "internal",
        "definition": {
            "problem": "slow triage",
            "users": "HR agents",
            "outputs": "a category",
            "baseline": "5 min",
        },
        "success_criteria": [{"metric": "useful_rate", "at_least": 0.8, "min_samples": 50}],
        "projected_volume": {"tasks_per_day": 200},
    }
    spec.update(kw)
    return spec


@pytest.fixture
def egw(upstream: UpstreamServer, tmp_path: Path, db_url: str) -> Iterator[Gateway]:
    with run_gateway(base_config(upstream.url, db_url=db_url), tmp_path) as gw:
        with gw.client(gw.admin_key) as c:
            assert c.post("/api/usecases", json={"spec": _spec()}).status_code == 201
        yield gw


def _move(c: httpx.Client, **body: Any) -> httpx.Response:
    return c.post("/api/usecases/triage/transitions", json=body)


def test_gates_move_a_use_case_through_its_stages_and_audit_each_step(egw: Gateway) -> None:
    builder = egw.make_key("hr", "builder")
    approver = egw.make_key("hr", "approver")
    with egw.client(builder) as c:
        stage = c.get("/api/usecases/triage/stage").json()
        assert stage["stage"] == "idea" and stage["next"] == "discovery" and stage["next_gate"]["allowed"]
        r = _move(c, to="pilot")  # a skipped step
        assert r.status_code == 409 and r.json()["error"]["code"] == "gate_refused"
        assert r.json()["error"]["missing"][0]["requirement"] == "next stage"
        assert _move(c).json()["stage"] == "discovery"
        assert _move(c).json()["stage"] == "pilot"
        r = _move(c)  # pilot → decision: the window is not over and nothing is measured yet
        assert r.status_code == 409 and "window ends" in r.json()["error"]["message"]
        r = _move(c, to="retired", decision="stop", rationale="not worth it")
        assert r.status_code == 403  # decisions are the approvers'
    with egw.client(approver) as c:
        r = _move(c, to="retired", decision="stop", rationale="short")
        assert r.status_code == 400 and r.json()["error"]["param"] == "rationale"
        history = c.get("/api/usecases/triage/stage").json()
    locks = history["criteria"]
    assert [lock["kind"] for lock in locks] == ["lock"] and len(locks[0]["criteria_hash"]) == 64
    assert [(t["from_stage"], t["to_stage"]) for t in history["transitions"]] == [
        ("idea", "discovery"),
        ("discovery", "pilot"),
    ]
    with egw.client(egw.admin_key) as c:
        events = c.get("/api/audit", params={"action": "usecase.stage"}).json()["data"]
    assert [e["details"]["to"] for e in reversed(events)] == ["discovery", "pilot"]
    assert events[0]["details"]["criteria_hash"] == locks[0]["criteria_hash"]


def test_criteria_changed_after_the_lock_are_kept_as_an_amendment(egw: Gateway) -> None:
    with egw.client(egw.admin_key) as c:
        _move(c)
        assert _move(c).json()["stage"] == "pilot"
        changed = _spec(success_criteria=[{"metric": "useful_rate", "at_least": 0.6, "min_samples": 50}])
        assert c.post("/api/usecases", json={"spec": changed}).json()["version"] == 2
        assert c.post("/api/usecases", json={"spec": {**changed, "title": "Renamed"}}).json()["version"] == 3
        locks = c.get("/api/usecases/triage/stage").json()["criteria"]
        events = c.get("/api/audit", params={"action": "usecase.criteria_amended"}).json()["data"]
    assert [lock["kind"] for lock in locks] == ["lock", "amendment"]  # the title change is no amendment
    assert locks[1]["spec_version"] == 2 and locks[1]["criteria"][0]["at_least"] == 0.6
    assert len(events) == 1


def test_the_decision_gate_opens_when_the_window_is_over_and_decisions_route(egw: Gateway) -> None:
    approver = egw.make_key("hr", "approver")
    with egw.client(egw.admin_key) as c:
        _move(c)
        assert _move(c).json()["stage"] == "pilot"
        c.post("/api/usecases", json={"spec": _spec(definition={**_spec()["definition"], "pilot_weeks": 0})})
        assert _move(c).json()["stage"] == "decision"
    with egw.client(approver) as c:
        r = _move(c, to="hardening", decision="stop", rationale="the numbers say no")
        assert r.status_code == 409
        r = _move(c, to="discovery", decision="redesign", rationale="useful rate too low; rework prompts")
        assert r.json()["stage"] == "discovery"
        r = _move(c, to="pilot")  # the same spec version may not start another pilot
        assert r.status_code == 403  # an approver advances only through decisions
    with egw.client(egw.make_key("hr", "builder")) as c:
        r = _move(c, to="pilot")
        assert r.status_code == 409 and "new spec version" in r.json()["error"]["message"]


def test_tasks_from_the_api_and_from_csv(egw: Gateway) -> None:
    user = egw.make_key("hr", "user")
    now = datetime.now(UTC)
    with egw.client(user) as c:
        r = c.post(
            "/v1/tasks",
            json={"use_case": "triage", "group": "treatment", "duration_s": 95.5, "outcome": "done"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["duration_s"] == 95.5 and r.json()["user"].startswith("key:")
        r = c.post(
            "/v1/tasks",
            json={
                "use_case": "triage",
                "group": "baseline",
                "user": "agent@example.com",
                "started_at": (now - timedelta(minutes=5)).isoformat(),
                "finished_at": now.isoformat(),
            },
        )
        assert r.status_code == 201 and r.json()["duration_s"] == pytest.approx(300)
        bad: list[tuple[dict[str, Any], int, str]] = [
            ({"group": "treatment", "duration_s": 1}, 400, "use_case"),
            ({"use_case": "nope", "group": "treatment", "duration_s": 1}, 404, ""),
            ({"use_case": "triage", "group": "pilot", "duration_s": 1}, 400, "group"),
            ({"use_case": "triage", "group": "control"}, 400, "duration_s"),
            ({"use_case": "triage", "group": "control", "duration_s": -3}, 400, "duration_s"),
            (
                {"use_case": "triage", "group": "control", "started_at": "yesterday", "duration_s": 3},
                400,
                "started_at",
            ),
            (
                {
                    "use_case": "triage",
                    "group": "control",
                    "started_at": now.isoformat(),
                    "finished_at": (now - timedelta(seconds=1)).isoformat(),
                },
                400,
                "finished_at",
            ),
            ({"use_case": "triage", "group": "control", "duration_s": 3, "run_ids": 5}, 400, "run_ids"),
            ({"use_case": "triage", "group": "control", "duration_s": 3, "colour": "red"}, 400, "colour"),
        ]
        for body, status, param in bad:
            r = c.post("/v1/tasks", json=body)
            assert r.status_code == status, (body, r.text)
            if param:
                assert r.json()["error"]["param"] == param, body
    with egw.client(egw.make_key("finance", "user")) as c:
        r = c.post("/v1/tasks", json={"use_case": "triage", "group": "treatment", "duration_s": 3})
        assert r.status_code == 403
    csv_ok = (
        "user,group,duration_s,outcome\na@example.com,baseline,300,done\nb@example.com,baseline,280,done\n"
    )
    csv_bad = (
        "user,group,duration_s\na@example.com,baseline,300\nb@example.com,nope,280\nc@example.com,baseline,\n"
    )
    with egw.client(egw.make_key("hr", "builder")) as c:
        r = c.post("/api/usecases/triage/tasks/import", content=csv_ok.encode())
        assert r.status_code == 201 and r.json()["imported"] == 2
        r = c.post("/api/usecases/triage/tasks/import", content=csv_bad.encode())
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_csv"
        message = r.json()["error"]["message"]
        assert (
            "line 3: group" in message and "line 4: duration_s" in message and "nothing imported" in message
        )
        r = c.post("/api/usecases/triage/tasks/import", content=b"who,what\nx,y\n")
        assert r.status_code == 422
        listed = c.get("/api/usecases/triage/tasks").json()["data"]
    assert sorted(t["group"] for t in listed) == ["baseline", "baseline", "baseline", "treatment"]
    assert {t["source"] for t in listed} == {"api", "csv"}


def test_proposals_the_matrix_similar_work_and_acceptance(egw: Gateway) -> None:
    hr_user = egw.make_key("hr", "user")
    fin_user = egw.make_key("finance", "user")
    leave = {
        "title": "Answer leave questions",
        "problem": "Employees email HR about parental leave and annual leave rules every day.",
        "workflow": "HR agents search the leave policy and reply by email.",
        "users": "all employees",
        "volume_per_day": 120,
        "value": 4,
        "complexity": 2,
    }
    with egw.client(hr_user, timeout=120) as c:  # the first similarity search loads the local model
        first = c.post("/api/proposals", json=leave)
        assert first.status_code == 201, first.text
        assert first.json()["quadrant"] == "quick_win" and first.json()["status"] == "open"
        r = c.post(
            "/api/proposals", json={**leave, "title": "Leave policy answers", "value": 2, "complexity": 5}
        )
        similar = r.json()["similar"]
        assert similar and similar[0]["id"] == first.json()["id"] and 0.35 <= similar[0]["score"] <= 1
        assert r.json()["quadrant"] == "reconsider"
        for bad, param in (
            ({**leave, "value": 6}, "value"),
            ({**leave, "title": ""}, "title"),
            ({**leave, "x": 1}, "x"),
        ):
            r = c.post("/api/proposals", json=bad)
            assert r.status_code in (400, 422) and param in r.text
        r = c.post("/api/proposals", json={**leave, "department": "finance"})
        assert r.status_code == 403
        matrix = c.get("/api/proposals", params={"view": "matrix"}).json()["quadrants"]
        assert [p["title"] for p in matrix["quick_win"]] == ["Answer leave questions"]
        r = c.post(f"/api/proposals/{first.json()['id']}/accept", json={"usecase_id": "leave-answers"})
        assert r.status_code == 403  # accepting is for builders and department admins
    with egw.client(fin_user) as c:
        assert c.get("/api/proposals").json()["data"] == []  # another department's proposals stay hidden
        assert c.get(f"/api/proposals/{first.json()['id']}").status_code == 403
    with egw.client(egw.make_key("hr", "builder")) as c:
        r = c.post(f"/api/proposals/{first.json()['id']}/accept", json={"usecase_id": "leave-answers"})
        assert r.status_code == 201 and r.json()["stage"] == "idea", r.text
        again = c.post(f"/api/proposals/{first.json()['id']}/accept", json={"usecase_id": "other"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "proposal_decided"
        stage = c.get("/api/usecases/leave-answers/stage").json()
        assert stage["stage"] == "idea" and stage["next_gate"]["allowed"]  # the proposal states the problem
        assert c.post("/api/usecases/leave-answers/transitions", json={}).json()["stage"] == "discovery"
        r = c.post("/api/usecases/leave-answers/transitions", json={})
        assert r.status_code == 409 and r.json()["error"]["missing"][0]["requirement"] == "spec"
    with egw.client(egw.admin_key) as c:
        actions = {e["action"] for e in c.get("/api/audit", params={"action": "proposal."}).json()["data"]}
    assert actions == {"proposal.create", "proposal.accept"}


def test_the_decision_gate_opens_when_every_criterion_has_its_samples(egw: Gateway) -> None:
    small = _spec(success_criteria=[{"metric": "useful_rate", "at_least": 0.5, "min_samples": 3}])
    user = egw.make_key("hr", "user")
    with egw.client(egw.admin_key) as c:
        assert c.post("/api/usecases", json={"spec": small}).json()["version"] == 2
        for fmt in ("md", "html"):  # before the pilot the recommendation is marked provisional
            text = c.get("/api/usecases/triage/report", params={"format": fmt}).text
            assert "(provisional)" in text and "No pilot has started" in text, fmt
        _move(c)
        assert _move(c).json()["stage"] == "pilot"
        r = _move(c, dry_run=True)
        assert not r.json()["allowed"] and "0 of 3 samples" in r.json()["checks"][0]["detail"]
    with egw.client(user) as c:
        for _ in range(3):
            run = c.post("/v1/usecases/triage/run", json={"inputs": {"ticket": "My laptop is broken"}})
            assert run.status_code == 200, run.text
            assert (
                c.post("/v1/feedback", json={"run_id": run.json()["run_id"], "rating": "up"}).status_code
                == 201
            )
    egw.flush()
    with egw.client(egw.admin_key) as c:
        r = _move(c)
        assert r.status_code == 200, r.text
        assert r.json()["stage"] == "decision"
        report = c.get("/api/usecases/triage/report").json()
        markdown = c.get("/api/usecases/triage/report", params={"format": "md"}).text
    assert "Recommendation:" in markdown and "provisional" not in markdown  # the pilot ran
    assert report["criteria"][0]["outcome"] in ("PASS", "INCONCLUSIVE")
    assert report["metrics"]["useful_rate"]["n"] == 3 and report["metrics"]["useful_rate"]["estimate"] == 1.0
