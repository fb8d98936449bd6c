"""Jobs through the real server and the `aerodrome worker` command: failures visible, the scaled split."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aerodrome.jobs.context import Job, JobContext
from aerodrome.jobs.registry import JobKind
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.storage.engine import make_engine
from tests.harness import base_config, postgres_available, postgres_database, run_gateway
from tests.upstream.fixtures import UpstreamServer

AERODROME = str(Path(sys.executable).with_name("aerodrome"))


def _wait_for(c: Any, job_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {statuses}")


def test_a_failing_job_is_retried_then_shown_failed_with_its_error(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = base_config(
        upstream.url, db_url=f"sqlite:///{tmp_path}/j.db", jobs={"backoff_s": 0, "poll_s": 0.05}
    )
    with run_gateway(cfg, tmp_path) as gw:
        attempts: list[int] = []

        def explode(ctx: JobContext, job: Job) -> dict[str, Any]:
            attempts.append(job.attempt)
            raise RuntimeError(f"the evaluation model timed out (attempt {job.attempt})")

        gw.runtime.jobs.kinds.register("explode", JobKind("explode", explode, max_attempts=2))
        job_id = gw.runtime.jobs.enqueue("explode", "suite-1", created_by="alice")
        with gw.client(gw.admin_key) as c:
            job = _wait_for(c, job_id, ("failed",))
            assert job["attempts"] == 2 and job["max_attempts"] == 2
            assert job["error"] == "RuntimeError: the evaluation model timed out (attempt 2)"
            listed = c.get("/api/jobs", params={"status": "failed", "kind": "explode"}).json()["data"]
            assert [j["id"] for j in listed] == [job_id]
            bad = c.get("/api/jobs", params={"status": "exploded"})
            assert bad.status_code == 400 and "unknown job status" in bad.json()["error"]["message"]
            assert c.get("/api/jobs/nope").json()["error"]["code"] == "job_not_found"
        assert attempts == [1, 2]
        with gw.client(gw.make_key("hr", "user")) as c:
            denied = c.get(f"/api/jobs/{job_id}")
            assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
            assert c.get("/api/jobs").status_code == 403
        with gw.client(gw.make_key("hr", "auditor")) as c:
            assert c.get(f"/api/jobs/{job_id}").json()["status"] == "failed"


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running at 127.0.0.1:5432")
def test_servers_enqueue_and_an_aerodrome_worker_runs_ingestion_rollups_and_retention(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    docs = tmp_path / "it"
    docs.mkdir()
    (docs / "vpn.md").write_text("# VPN\n\nConnect to the VPN with the company app before you log in.\n")
    (docs / "mail.md").write_text("# Mail\n\nShared mailboxes are requested through the IT portal.\n")
    with postgres_database() as url:
        cfg = base_config(
            upstream.url,
            db_url=url,
            jobs={"run_in_server": False},
            retention={"content_days": 30},
            collections=[
                {
                    "name": "it-help",
                    "readers": {"departments": ["*"]},
                    "sources": [{"kind": "folder", "path": "it"}],
                    "embedding": "embed-small",
                }
            ],
        )
        with run_gateway(cfg, tmp_path) as gw:
            old = {
                "id": uuid.uuid4().hex,
                "request_id": "r",
                "created_at": datetime.now(UTC) - timedelta(days=90),
                "endpoint": "chat",
                "principal": "someone",
                "department_id": "hr",
                "status": "ok",
                "http_status": 200,
                "latency_ms": 5.0,
                "input": {"messages": [{"role": "user", "content": "my IBAN is ..."}]},
            }
            engine = make_engine(url)
            writer = RunWriter(engine)
            writer.submit(old)
            assert writer.wait_idle(10)
            writer.close()
            engine.dispose()
            with gw.client(gw.admin_key) as c:
                r = c.post("/api/collections/it-help/sync")
                assert r.status_code == 202, r.text
                job_id = r.json()["id"]
                assert c.get(f"/api/jobs/{job_id}").json()["status"] == "queued", "no worker in the server"
                env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
                done = subprocess.run(
                    [AERODROME, "worker", "--once", "--config", str(gw.config_path)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=120,
                )
                assert done.returncode == 0, done.stderr
                assert "ran 3 job(s)" in done.stdout  # the sync, a rollup, the retention purge
                job = c.get(f"/api/jobs/{job_id}").json()
                assert job["status"] == "succeeded" and job["result"]["added"] == 2, job
                hits = c.post("/v1/retrieve", json={"collections": ["it-help"], "query": "VPN app"}).json()
                assert hits["results"][0]["document_id"] == "vpn.md"
                kinds = {j["kind"]: j for j in c.get("/api/jobs").json()["data"]}
                assert kinds["retention"]["status"] == "succeeded"
                assert kinds["retention"]["result"]["content_cleared"] == 1
                assert kinds["rollup"]["status"] == "succeeded"
                assert c.get(f"/api/runs/{old['id']}").json()["input"] is None
                audit = c.get("/api/audit", params={"action": "retention.purge"}).json()["data"]
                assert audit and audit[0]["details"]["content_cleared"] == 1


def test_a_failed_job_can_be_retried_by_an_administrator_and_the_retry_is_audited(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = base_config(
        upstream.url, db_url=f"sqlite:///{tmp_path}/j.db", jobs={"backoff_s": 0, "poll_s": 0.05}
    )
    with run_gateway(cfg, tmp_path) as gw:
        healthy = {"now": False}

        def flaky(ctx: JobContext, job: Job) -> dict[str, Any]:
            if not healthy["now"]:
                raise RuntimeError("the index server is down")
            return {"done": 1}

        gw.runtime.jobs.kinds.register("flaky", JobKind("flaky", flaky, max_attempts=1))
        job_id = gw.runtime.jobs.enqueue("flaky", "x", created_by="alice")
        with gw.client(gw.admin_key) as c:
            assert _wait_for(c, job_id, ("failed",))["error"] == "RuntimeError: the index server is down"
            healthy["now"] = True
            with gw.client(gw.make_key("hr", "auditor")) as auditor:
                denied = auditor.post(f"/api/jobs/{job_id}/retry")
                assert denied.status_code == 403
            r = c.post(f"/api/jobs/{job_id}/retry")
            assert r.status_code == 200 and r.json()["status"] in ("queued", "running", "succeeded")
            job = _wait_for(c, job_id, ("succeeded",))
            assert job["attempts"] == 1 and job["result"] == {"done": 1}
            again = c.post(f"/api/jobs/{job_id}/retry")
            assert again.status_code == 409 and again.json()["error"]["code"] == "job_not_failed"
            assert c.post("/api/jobs/nope/retry").json()["error"]["code"] == "job_not_found"
            audit = c.get("/api/audit", params={"action": "job.retry"}).json()["data"]
            assert [e["object_id"] for e in audit] == [job_id]
            assert audit[0]["details"]["error"] == "RuntimeError: the index server is down"


def test_aerodrome_worker_runs_until_sigterm_and_then_exits_cleanly(tmp_path: Path) -> None:
    import signal

    import yaml

    from aerodrome.jobs.queue import JobQueue, get_job
    from aerodrome.storage import migrate

    db = f"sqlite:///{tmp_path}/w.db"
    config = tmp_path / "aerodrome.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": db}, "jobs": {"poll_s": 0.1}}))
    engine = make_engine(db)
    migrate.upgrade(engine)
    job_id = JobQueue(engine).enqueue("rollup", "manual", created_by="alice", max_attempts=1)
    proc = subprocess.Popen(
        [AERODROME, "worker", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AERODROME_LOG_JSON": "false"},
    )
    try:
        deadline = time.monotonic() + 60
        while get_job(engine, job_id)["status"] != "succeeded":
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the worker did not run the job"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        engine.dispose()
    assert proc.returncode == 0, err
    assert "running eval, ingest, redteam, retention, rollup" in out


def test_metrics_show_waiting_jobs_when_no_worker_takes_them(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/m.db", jobs={"run_in_server": False})
    with run_gateway(cfg, tmp_path) as gw:
        gw.runtime.jobs.enqueue("ingest", "hr-policies", created_by="alice")
        deadline = time.monotonic() + 30
        with gw.client() as c:
            while True:  # the gauges are read with the catalog refresh, every few seconds
                text = c.get("/metrics").text
                if 'aerodrome_jobs{kind="ingest",status="queued"} 1.0' in text:
                    break
                assert time.monotonic() < deadline, "the job gauge never showed the queued job"
                time.sleep(0.2)
        line = next(x for x in text.splitlines() if x.startswith("aerodrome_jobs_oldest_queued_seconds "))
        assert float(line.split()[1]) > 0
