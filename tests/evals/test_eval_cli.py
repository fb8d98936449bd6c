"""`aerodrome eval`: run a suite from the command line, compare, turn corrected runs into live cases."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from aerodrome.cli import app
from aerodrome.evidence import report
from tests.evals.test_eval_runs import SPEC, egw, run_eval  # noqa: F401
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer

runner = CliRunner()


def _cli(gw: Gateway, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["eval", *args, "--config", str(gw.config_path)])
    return result.exit_code, result.output


def test_eval_command_runs_compares_and_fails_on_threshold(egw: Gateway, upstream: UpstreamServer) -> None:  # noqa: F811
    code, out = _cli(egw, "faq-bot")
    assert code == 0, out
    assert "PASSED faq-bot v1 on mock-a (gpt-mock): 4/4 cases (100.0%, threshold 75%)" in " ".join(
        out.split()
    )
    upstream.fault(model="gpt-mock-b", reply="I have no idea.", times=2)
    code, out = _cli(egw, "faq-bot", "--deployment", "mock-b", "--json")
    assert code == 1, out
    worse = json.loads(out[out.index("{") :])  # stderr (a model-loading bar) may come first
    assert worse["status"] == "failed" and worse["pass_rate"] == 0.5 and worse["deployment"] == "mock-b"
    with egw.client(egw.admin_key) as c:
        base = c.get("/api/evals/runs", params={"usecase_id": "faq-bot"}).json()["data"][-1]
    code, out = _cli(egw, "compare", base["id"], worse["id"])
    assert code == 0, out
    flat = " ".join(out.split())
    assert "difference -50.0%" in flat and "regressed leave (curated): contains: missing" in flat
    code, out = _cli(egw, "runs")
    assert code == 0 and worse["id"] in out
    code, out = _cli(egw, "faq-bot", "--deployment", "nope")
    assert code == 2 and "no deployment 'nope'" in out


def test_suite_problems_are_printed_with_their_lines(egw: Gateway) -> None:  # noqa: F811
    suite = egw.config_path.parent / "usecases" / "evals" / "faq-bot.yaml"
    suite.write_text(
        "cases:\n  - id: a\n    inputs: {question: q}\n    assertions: [{contains: {values: x}}]\n"
    )
    code, out = _cli(egw, "faq-bot")
    assert code == 2
    assert f"{suite}:4: cases.0.assertions.0.value: Field required" in " ".join(out.split())


def test_corrected_runs_become_live_cases(egw: Gateway, upstream: UpstreamServer) -> None:  # noqa: F811
    key = egw.make_key("hr", "user")
    with egw.client(key) as c:
        r = c.post("/v1/usecases/faq-bot/run", json={"inputs": {"question": "Who approves leave?"}})
        assert r.status_code == 200, r.text
        run_id = r.json()["run_id"]
        egw.flush()
        r = c.post(
            "/v1/feedback",
            json={"run_id": run_id, "rating": "down", "correction": "Your manager approves leave."},
        )
        assert r.status_code in (200, 201), r.text
    with egw.client(egw.admin_key) as c:
        run_eval(c)
    flags = {f["code"] for f in report.build(egw.runtime.engine, "faq-bot")["red_flags"]}
    assert "curated_only_evaluation" in flags
    code, out = _cli(egw, "cases-from-feedback", "faq-bot")
    assert code == 0 and "added 1 live case(s)" in out, out
    target = egw.config_path.parent / "usecases" / "evals" / "faq-bot.jsonl"
    (case,) = [orjson.loads(line) for line in target.read_text().splitlines()]
    assert case["source"] == "live" and case["inputs"] == {"question": "Who approves leave?"}
    assert case["reference"] == "Your manager approves leave." and case["department"] == "hr"
    assert case["assertions"] == [{"type": "similar", "min": 0.75}]
    assert case["origin"]["run_id"] == run_id and case["origin"]["kind"] == "correction"
    code, out = _cli(egw, "cases-from-feedback", "faq-bot")
    assert code == 0 and "added 0 live case(s)" in out  # the same run is not added twice
    with egw.client(egw.admin_key) as c:
        run = run_eval(c)
    assert (run["curated_cases"], run["live_cases"]) == (4, 1)
    live = run["results"][-1]
    assert live["case_id"] == case["id"] and live["source"] == "live"
    assert live["assertions"][0]["type"] == "similar" and live["assertions"][0]["score"] is not None
    flags = {f["code"] for f in report.build(egw.runtime.engine, "faq-bot")["red_flags"]}
    assert "curated_only_evaluation" not in flags and "no_evaluation" not in flags
    evaluation = report.build(egw.runtime.engine, "faq-bot")["evaluation"]
    assert evaluation["id"] == run["id"] and evaluation["live_cases"] == 1


def test_runs_without_logged_content_are_skipped_with_the_reason(egw: Gateway, tmp_path: Path) -> None:  # noqa: F811
    with egw.client(egw.admin_key) as c:
        spec = {
            "id": "fin-bot",
            "title": "Finance bot",
            "departments": ["finance"],
            "inputs": {"question": {"type": "string", "required": True}},
            "prompt": "{{ question }}",
            "model": "chat-small",
        }
        assert c.post("/api/usecases", json={"spec": spec}).status_code == 201
    with egw.client(egw.make_key("finance", "user")) as c:
        run_id = c.post("/v1/usecases/fin-bot/run", json={"inputs": {"question": "VAT rate?"}}).json()[
            "run_id"
        ]
        egw.flush()
        c.post("/v1/feedback", json={"run_id": run_id, "correction": "20%"})
    code, out = _cli(egw, "cases-from-feedback", "fin-bot")
    assert code == 0 and "added 0 live case(s)" in out
    assert (
        f"skipped run {run_id}: its inputs were not kept (department 'finance' does not log content in full)"
        in " ".join(out.split())
    )


def test_validate_checks_suites_without_running_them(egw: Gateway, upstream: UpstreamServer) -> None:  # noqa: F811
    code, out = _cli(egw, "validate")
    assert code == 0 and "ok faq-bot: 4 cases" in out
    folder = egw.config_path.parent / "usecases" / "evals"
    (folder / "ghost.yaml").write_text("cases: []\n")
    (folder / "faq-bot.jsonl").write_text('{"id": "x", "inputs": {"question": 1}, "assertions": ["cites"]}\n')
    code, out = _cli(egw, "validate")
    flat = " ".join(out.split())
    assert code == 1
    assert f"{folder / 'faq-bot.jsonl'}:1: inputs: inputs.question: must be a string, not int" in flat
    assert "ghost: no use case 'ghost'" in flat
    assert upstream.requests("/v1/chat/completions") == []


def test_a_reviewers_edit_becomes_a_live_case(egw: Gateway) -> None:  # noqa: F811
    with egw.client(egw.admin_key) as c:
        spec = {**SPEC, "review": {"when": ["always"]}}
        assert c.post("/api/usecases", json={"spec": spec}).status_code == 201
    with egw.client(egw.make_key("hr", "user", name="asker")) as c:
        held = c.post("/v1/usecases/faq-bot/run", json={"inputs": {"question": "Is Friday off?"}}).json()
        assert held["review_status"] == "pending"
    egw.flush()
    with egw.client(egw.make_key("hr", "reviewer", name="expert")) as c:
        assert c.post(f"/api/reviews/{held['review_id']}/claim").status_code == 200
        r = c.post(f"/api/reviews/{held['review_id']}/edit", json={"output": "No, Friday is a working day."})
        assert r.status_code == 200, r.text
    code, out = _cli(egw, "cases-from-feedback", "faq-bot", "--dry-run")
    assert code == 0, out
    (case,) = [json.loads(line[line.index("{") :]) for line in out.splitlines() if '{"' in line]
    assert case["reference"] == "No, Friday is a working day." and case["inputs"] == {
        "question": "Is Friday off?"
    }
    assert case["origin"]["kind"] == "review_edited" and case["origin"]["review_id"] == held["review_id"]
    assert not (
        egw.config_path.parent / "usecases" / "evals" / "faq-bot.jsonl"
    ).exists()  # a dry run writes nothing
