"""Eval runs on a real server: API, pinned deployments, run records, comparison, the model-upgrade gate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from aerodrome.evidence import report
from aerodrome.evidence.metrics import Scope, compute
from aerodrome.storage.tables import usecases
from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer

QUESTIONS = {
    "leave": "How long is parental leave?",
    "sick": "How many sick days do I get?",
    "expenses": "When are expenses due?",
    "remote": "May I work from home?",
}

SUITE = "usecase: faq-bot\nthreshold: 0.75\ncases:\n" + "".join(
    f"  - id: {case}\n    inputs: {{question: {q!r}}}\n    assertions:\n      - contains: {q!r}\n"
    for case, q in QUESTIONS.items()
)

SPEC = {
    "id": "faq-bot",
    "title": "FAQ bot",
    "departments": ["hr"],
    "inputs": {"question": {"type": "string", "required": True, "max_length": 500}},
    "prompt": "Question: {{ question }}",
    "model": "chat-prod",
}


def eval_config(upstream: UpstreamServer, tmp_path: Path, db_url: str) -> dict[str, Any]:
    cfg = base_config(upstream.url, db_url=db_url)
    cfg["usecases"] = {"dir": "usecases", "reload_s": 0.2}
    cfg["evals"] = {"concurrency": 1, "judge_model": "chat-judge"}
    for dep in cfg["deployments"]:  # a busy machine must not turn a scripted answer into a retry
        dep["timeout_s"] = 15
    return cfg


@pytest.fixture
def egw(upstream: UpstreamServer, tmp_path: Path, db_url: str) -> Iterator[Gateway]:
    (tmp_path / "usecases" / "evals").mkdir(parents=True)
    (tmp_path / "usecases" / "evals" / "faq-bot.yaml").write_text(SUITE, encoding="utf-8")
    with run_gateway(eval_config(upstream, tmp_path, db_url), tmp_path) as gw:
        with gw.client(gw.admin_key) as c:
            for name, deps in (("chat-prod", ["mock-a"]), ("chat-judge", ["mock-b"])):
                r = c.put(f"/api/catalog/aliases/{name}", json={"deployments": deps})
                assert r.status_code == 200, r.text
            r = c.post("/api/usecases", json={"spec": SPEC})
            assert r.status_code == 201, r.text
        yield gw


def run_eval(c: httpx.Client, usecase: str = "faq-bot", **body: Any) -> dict[str, Any]:
    """Start a suite run through the API and wait for it; the stored run with its results."""
    r = c.post("/api/evals/runs", json={"usecase_id": usecase, **body})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "running" and started["job_id"]
    deadline = time.monotonic() + 60
    while True:
        run = c.get(f"/api/evals/runs/{started['id']}").json()
        if run["status"] != "running":
            assert run["job_id"] == started["job_id"] and "progress" not in run
            return dict(run)
        assert time.monotonic() < deadline, "the eval run did not finish in 60 s"
        time.sleep(0.1)


def make_production(gw: Gateway, usecase_id: str = "faq-bot") -> None:
    """Stand-in for a use case that went through every stage gate (tested in tests/evidence)."""
    with gw.runtime.engine.begin() as conn:
        conn.execute(update(usecases).where(usecases.c.id == usecase_id).values(stage="production"))


def test_a_suite_runs_through_the_use_case_on_the_pinned_deployment(
    egw: Gateway, upstream: UpstreamServer
) -> None:
    with egw.client(egw.admin_key) as c:
        run = run_eval(c, deployment="mock-b")
        assert run["status"] == "passed" and (run["cases"], run["passed"]) == (4, 4)
        assert run["deployment"] == "mock-b" and run["upstream_model"] == "gpt-mock-b"
        assert run["spec_version"] == 1 and run["curated_cases"] == 4 and run["live_cases"] == 0
        assert [r["case_id"] for r in run["results"]] == list(QUESTIONS)
        first = run["results"][0]
        assert first["output"] == f"Echo: Question: {QUESTIONS['leave']}"
        assert first["assertions"] == [{"type": "contains", "passed": True, "score": None, "detail": ""}]
        assert run["cost_usd"] > 0 and first["cost_usd"] > 0 and first["latency_ms"] > 0
        # every case reached the pinned deployment, although the alias serves mock-a
        models = [r["body"]["model"] for r in upstream.requests("/v1/chat/completions")]
        assert models == ["gpt-mock-b"] * 4
        records = {r["id"]: r for r in egw.runs()}
        record = records[first["run_id"]]
        assert record["endpoint"] == "eval" and record["deployment"] == "mock-b"
        assert record["use_case_id"] == "faq-bot" and record["principal"] == "eval:admin@example.com"
        listed = c.get("/api/evals/runs", params={"usecase_id": "faq-bot"}).json()["data"]
        assert [r["id"] for r in listed] == [run["id"]] and "results" not in listed[0]
    # evaluation runs are not use: the evidence engine does not count them, but reads the pass rate
    values = compute(egw.runtime.engine, Scope("faq-bot")).values
    assert values["error_rate"].n == 0
    assert values["eval_pass_rate"].estimate == 1.0 and values["eval_pass_rate"].n == 4
    flags = {f["code"] for f in report.build(egw.runtime.engine, "faq-bot")["red_flags"]}
    assert "curated_only_evaluation" in flags and "no_evaluation" not in flags


def test_an_older_spec_version_is_evaluated_as_it_was(egw: Gateway, upstream: UpstreamServer) -> None:
    with egw.client(egw.admin_key) as c:
        r = c.post("/api/usecases", json={"spec": {**SPEC, "prompt": "Q: {{ question }}"}})
        assert r.json()["version"] == 2
        old = run_eval(c, spec_version=1)
        new = run_eval(c)
    assert old["spec_version"] == 1 and old["status"] == "passed"
    assert new["spec_version"] == 2 and new["passed"] == 4
    assert new["results"][0]["output"] == f"Echo: Q: {QUESTIONS['leave']}"


def test_comparison_lists_regressions_with_the_interval(egw: Gateway, upstream: UpstreamServer) -> None:
    with egw.client(egw.admin_key) as c:
        base = run_eval(c)
        upstream.fault(model="gpt-mock-b", reply="I have no idea.", times=3)
        cand = run_eval(c, deployment="mock-b")
        assert cand["status"] == "failed" and cand["passed"] == 1
        comp = c.get("/api/evals/compare", params={"base": base["id"], "candidate": cand["id"]}).json()
    assert comp["base_pass_rate"] == 1.0 and comp["candidate_pass_rate"] == 0.25
    assert [r["case_id"] for r in comp["regressed"]] == ["leave", "sick", "expenses"]
    assert comp["regressed"][0]["failed"][0]["type"] == "contains"
    diff = comp["difference"]
    assert diff["estimate"] == -0.75 and diff["low"] < -0.75 < diff["high"] < 0
    assert comp["same_suite"] and comp["paired_cases"] == 4 and comp["fixed"] == []


def test_switching_a_production_alias_needs_a_suite_at_least_as_good(
    egw: Gateway, upstream: UpstreamServer
) -> None:
    with egw.client(egw.admin_key) as c:
        # not in production: the alias changes freely
        assert c.put("/api/catalog/aliases/chat-prod", json={"deployments": ["mock-b"]}).status_code == 200
        assert c.put("/api/catalog/aliases/chat-prod", json={"deployments": ["mock-a"]}).status_code == 200
        make_production(egw)
        # no evidence: refused, with what to run
        r = c.put("/api/catalog/aliases/chat-prod", json={"deployments": ["mock-b"]})
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "upgrade_eval_missing" and err["usecase_id"] == "faq-bot"
        assert "aerodrome eval faq-bot --deployment mock-b" in err["message"]
        base = run_eval(c)
        upstream.fault(model="gpt-mock-b", reply="I have no idea.", times=2)
        worse = run_eval(c, deployment="mock-b")
        # worse: refused with the comparison
        r = c.put("/api/catalog/aliases/chat-prod", json={"deployments": ["mock-b"]})
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "upgrade_regression"
        assert "50.0% on mock-b against 100.0% on mock-a" in err["message"]
        comp = err["comparison"]
        assert comp["base"]["id"] == base["id"] and comp["candidate"]["id"] == worse["id"]
        assert [x["case_id"] for x in comp["regressed"]] == ["leave", "sick"]
        assert comp["difference"]["high"] < 0.5
        assert c.get("/api/catalog/aliases/chat-prod").json()["deployments"] == ["mock-a"]
        refused = c.get("/api/audit", params={"action": "usecase.model_upgrade_refused"}).json()["data"]
        assert [e["details"]["code"] for e in refused] == ["upgrade_regression", "upgrade_eval_missing"]
        assert refused[0]["details"]["regressed"] == ["leave", "sick"]
        # as good: accepted, and the evidence is audited with the change
        good = run_eval(c, deployment="mock-b")
        r = c.put("/api/catalog/aliases/chat-prod", json={"deployments": ["mock-b"]})
        assert r.status_code == 200, r.text
        upgrades = c.get("/api/audit", params={"action": "usecase.model_upgrade"}).json()["data"]
        assert len(upgrades) == 1
        details = upgrades[0]["details"]
        assert details["candidate_eval_run"] == good["id"] and details["base_eval_run"] == base["id"]
        assert (details["from"], details["to"], details["candidate_pass_rate"]) == ("mock-a", "mock-b", 1.0)
        # a new suite content makes the recorded runs stale evidence
        suite = egw.config_path.parent / "usecases" / "evals" / "faq-bot.yaml"
        suite.write_text(SUITE.replace("threshold: 0.75", "threshold: 0.5"), encoding="utf-8")
        r = c.put("/api/catalog/aliases/chat-prod", json={"deployments": ["mock-a"]})
        assert r.status_code == 409 and r.json()["error"]["code"] == "upgrade_eval_missing"
    # the production readiness item reads the same evidence
    check = egw.runtime.gate_evidence.evals("faq-bot")  # type: ignore[misc]
    assert not check.ok and "no eval run of spec version 1 with the current suite on mock-b" in check.detail


def test_readiness_needs_a_passing_run_on_the_serving_deployment(
    egw: Gateway, upstream: UpstreamServer
) -> None:
    evidence = egw.runtime.gate_evidence
    assert evidence.evals is not None
    assert not evidence.evals("faq-bot").ok
    with egw.client(egw.admin_key) as c:
        run_eval(c, deployment="mock-b")  # not the deployment that serves it
        assert not evidence.evals("faq-bot").ok
        upstream.fault(model="gpt-mock", reply="no", times=2)
        failed = run_eval(c)
        check = evidence.evals("faq-bot")
        assert not check.ok and failed["id"] in check.detail and "2 of 4" in check.detail
        run_eval(c)
    check = evidence.evals("faq-bot")
    assert check.ok and "4 of 4 cases" in check.detail


def test_an_llm_judge_scores_with_a_rubric_through_an_alias(egw: Gateway, upstream: UpstreamServer) -> None:
    suite = egw.config_path.parent / "usecases" / "evals" / "faq-bot.yaml"
    suite.write_text(
        "cases:\n"
        '  - id: polite\n    inputs: {question: "Hello?"}\n    reference: A friendly greeting.\n'
        "    assertions:\n      - judge: {rubric: The answer is polite and answers the question., min: 0.8}\n"
        '  - id: rude\n    inputs: {question: "Hi?"}\n'
        "    assertions:\n      - judge: The answer is polite.\n"
        '  - id: mute\n    inputs: {question: "Hey?"}\n'
        "    assertions:\n      - judge: The answer is polite.\n",
        encoding="utf-8",
    )
    upstream.fault(model="gpt-mock-b", reply='{"score": 0.9, "reason": "polite enough"}')
    upstream.fault(model="gpt-mock-b", reply='Sure! {"score": 0.1, "reason": "curt"}')
    upstream.fault(model="gpt-mock-b", reply="I would rather not say.")
    with egw.client(egw.admin_key) as c:
        run = run_eval(c)
    details = {r["case_id"]: r["assertions"][0] for r in run["results"]}
    assert details["polite"]["passed"] and details["polite"]["score"] == 0.9
    assert "polite enough" in details["polite"]["detail"]
    assert not details["rude"]["passed"] and details["rude"]["score"] == 0.1
    assert not details["mute"]["passed"] and "did not answer with a score" in details["mute"]["detail"]
    judged = [
        r["body"] for r in upstream.requests("/v1/chat/completions") if r["body"]["model"] == "gpt-mock-b"
    ]
    assert len(judged) == 3
    prompt = judged[0]["messages"][1]["content"]
    assert "RUBRIC:\nThe answer is polite and answers the question." in prompt
    assert "REFERENCE ANSWER:\nA friendly greeting." in prompt and "ANSWER:\nEcho: Question: Hello?" in prompt
    records = [r for r in egw.runs() if r["endpoint"] == "eval"]
    judge_records = [r for r in records if r["alias"] == "chat-judge"]
    assert len(judge_records) == 3 and all(r["cost_usd"] > 0 for r in judge_records)
    assert run["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in records))


def test_eval_api_errors(egw: Gateway, tmp_path: Path) -> None:
    with egw.client(egw.admin_key) as c:
        r = c.post("/api/evals/runs", json={"usecase_id": "faq-bot", "deployment": "nope"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        r = c.post("/api/evals/runs", json={"usecase_id": "faq-bot", "deployment": "mock-embed"})
        assert r.status_code == 400 and "serves embeddings" in r.json()["error"]["message"]
        r = c.post("/api/evals/runs", json={"usecase_id": "faq-bot", "spec_version": 9})
        assert r.status_code == 404 and r.json()["error"]["code"] == "usecase_version_not_found"
        r = c.post("/api/evals/runs", json={"usecase_id": "ghost"})
        assert r.status_code == 404
        r = c.post("/api/evals/runs", json={"usecase_id": "faq-bot", "extra": 1})
        assert r.status_code == 400
        suite = egw.config_path.parent / "usecases" / "evals" / "faq-bot.yaml"
        suite.write_text("cases:\n  - id: a\n    inputs: {question: 7}\n    assertions: [{regex: '('}]\n")
        r = c.post("/api/evals/runs", json={"usecase_id": "faq-bot"})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "invalid_eval_suite"
        assert [(p["line"], p["field"]) for p in err["problems"]] == [
            (3, "cases.0.inputs"),
            (4, "cases.0.assertions.0.pattern"),
        ]
        suite.unlink()
        r = c.post("/api/evals/runs", json={"usecase_id": "faq-bot"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "eval_suite_not_found"
        r = c.get("/api/evals/runs/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "eval_run_not_found"
    # departments see the evaluations of their own use cases only
    with egw.client(egw.make_key("finance", "builder")) as c:
        assert c.post("/api/evals/runs", json={"usecase_id": "faq-bot"}).status_code == 403
        assert c.get("/api/evals/runs").json()["data"] == []
    with egw.client(egw.make_key("hr", "user")) as c:
        assert c.get("/api/evals/runs").status_code == 403


def test_a_production_deployment_keeps_its_pinned_version(egw: Gateway, upstream: UpstreamServer) -> None:
    make_production(egw)
    with egw.client(egw.admin_key) as c:
        # an API-managed deployment serving the production use case
        dep = {"provider": "mock", "model": "gpt-mock-b", "timeout_s": 2}
        assert c.put("/api/catalog/deployments/mock-c", json=dep).status_code == 200
        run_eval(c)
        run_eval(c, deployment="mock-c")
        assert (
            c.put("/api/catalog/aliases/chat-prod", json={"deployments": ["mock-c", "mock-a"]}).status_code
            == 200
        )
        r = c.put("/api/catalog/deployments/mock-c", json={**dep, "model": "gpt-mock-2"})
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert (
            err["code"] == "upgrade_requires_new_deployment"
            and "add a deployment pinned to 'gpt-mock-2'" in err["message"]
        )
        # blocking it would move the use case to mock-a, which has a run as good: accepted and audited
        r = c.put("/api/catalog/deployments/mock-c", json={**dep, "status": "blocked"})
        assert r.status_code == 200, r.text
        upgrade = c.get("/api/audit", params={"action": "usecase.model_upgrade"}).json()["data"][0]
        assert (upgrade["details"]["from"], upgrade["details"]["to"]) == ("mock-c", "mock-a")
