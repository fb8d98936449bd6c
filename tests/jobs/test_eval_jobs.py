"""Evaluation runs as jobs of the queue: run by an `aerodrome worker` process, refused when the plan
changed in between, ended as errors when their job dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import jobs
from tests.evals.test_eval_runs import SPEC, SUITE, eval_config
from tests.harness import Gateway, run_gateway
from tests.upstream.fixtures import UpstreamServer

AERODROME = str(Path(sys.executable).with_name("aerodrome"))


def _prepare(gw: Gateway) -> None:
    with gw.client(gw.admin_key) as c:
        for name, deps in (("chat-prod", ["mock-a"]), ("chat-judge", ["mock-b"])):
            assert c.put(f"/api/catalog/aliases/{name}", json={"deployments": deps}).status_code == 200
        r = c.post("/api/usecases", json={"spec": SPEC})
        assert r.status_code == 201, r.text


def _start(c: httpx.Client) -> dict[str, Any]:
    r = c.post("/api/evals/runs", json={"usecase_id": "faq-bot"})
    assert r.status_code == 202, r.text
    started = dict(r.json())
    assert started["status"] == "running"
    return started


def _worker_once(gw: Gateway) -> str:
    done = subprocess.run(
        [AERODROME, "worker", "--once", "--config", str(gw.config_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "AERODROME_LOG_JSON": "false"},
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _wait(c: httpx.Client, run_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        run = dict(c.get(f"/api/evals/runs/{run_id}").json())
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, f"the eval run is still running: {run}"
        time.sleep(0.1)


def test_an_aerodrome_worker_runs_api_started_evaluations_and_refuses_a_changed_plan(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    suite = tmp_path / "usecases" / "evals" / "faq-bot.yaml"
    suite.parent.mkdir(parents=True)
    suite.write_text(SUITE, encoding="utf-8")
    cfg = eval_config(upstream, tmp_path, f"sqlite:///{tmp_path}/e.db")
    cfg["jobs"] = {"run_in_server": False}  # the scaled split: only worker processes run jobs
    with run_gateway(cfg, tmp_path) as gw:
        _prepare(gw)
        with gw.client(gw.admin_key) as c:
            # a run accepted, then its suite edited before any worker took it: refused, not mis-measured
            first = _start(c)
            assert c.get(f"/api/jobs/{first['job_id']}").json()["status"] == "queued"
            suite.write_text(SUITE.replace("threshold: 0.75", "threshold: 0.5"), encoding="utf-8")
            _worker_once(gw)
            refused = _wait(c, first["id"])
            assert refused["status"] == "error" and "changed" in refused["message"], refused
            job = c.get(f"/api/jobs/{first['job_id']}").json()
            assert job["status"] == "failed" and job["attempts"] == 1
            assert job["error"].startswith("eval_plan_changed"), job

            # the next run is planned on the edited suite and run by a worker process
            second = _start(c)
            out = _worker_once(gw)
            assert "ran 1 job(s)" in out or "ran 2 job(s)" in out, out  # (+ a due rollup)
            run = _wait(c, second["id"])
            assert run["status"] == "passed" and run["cases"] == 4, run
            job = c.get(f"/api/jobs/{second['job_id']}").json()
            assert job["status"] == "succeeded" and job["result"]["eval_run_id"] == second["id"]
            assert job["done"] == 4
            detail = c.get(f"/api/evals/runs/{second['id']}").json()
            assert {r["case_id"] for r in detail["results"]} == {"leave", "sick", "expenses", "remote"}
            assert all(r["run_id"] for r in detail["results"])  # each case is a real recorded run


def test_an_eval_run_whose_job_died_ends_as_an_error(upstream: UpstreamServer, tmp_path: Path) -> None:
    suite = tmp_path / "usecases" / "evals" / "faq-bot.yaml"
    suite.parent.mkdir(parents=True)
    suite.write_text(SUITE, encoding="utf-8")
    db = f"sqlite:///{tmp_path}/d.db"
    cfg = eval_config(upstream, tmp_path, db)
    cfg["jobs"] = {"run_in_server": False}
    with run_gateway(cfg, tmp_path) as gw:
        _prepare(gw)
        with gw.client(gw.admin_key) as c:
            started = _start(c)
            # what the queue does when the worker holding the job dies on its last attempt
            engine = make_engine(db)
            with engine.begin() as conn:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == started["job_id"])
                    .values(status="failed", error="lease expired: the worker stopped renewing it")
                )
            engine.dispose()
            run = _wait(c, started["id"], timeout_s=20)  # servers look every 5 s
            assert run["status"] == "error"
            assert "lease expired: the worker stopped renewing it" in run["message"], run
