"""The `aerodrome` command line: init, keys, models, db, serve on a stale schema, demo, bad configs."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from typer.testing import CliRunner

from aerodrome.cli import app
from aerodrome.config import load_config
from aerodrome.identity import passwords
from aerodrome.identity.keys import parse_prefix
from aerodrome.storage.engine import make_engine
from tests.harness import base_config, free_port, postgres_available, postgres_database, run_gateway

AERODROME = str(Path(sys.executable).with_name("aerodrome"))
runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(
        app,
        list(args),
        env={
            "AERODROME_CONFIG": None,
            "AERODROME_DATABASE_URL": None,  # type: ignore[dict-item]
            "COLUMNS": "200",
            **(env or {}),
        },
    )


@pytest.fixture
def config_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    cfg = base_config(None, db_url=f"sqlite:///{tmp_path}/cli.db")
    path = tmp_path / "aerodrome.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path, cfg


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not postgres_available():
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")
    with postgres_database() as url:
        yield url


def test_init_writes_a_commented_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "ws"
    r = cli("init", "--dir", str(target))
    assert r.exit_code == 0, r.output
    path = target / "aerodrome.yaml"
    text = path.read_text()
    assert sum(1 for line in text.splitlines() if line.lstrip().startswith("#")) >= 5
    assert "env:OPENAI_API_KEY" in text  # shows how to reference a secret
    cfg = load_config(path)
    assert {a.name for a in cfg.aliases} >= {"chat-small"}
    assert {d.id for d in cfg.departments} >= {"platform"}
    # the first admin's console login, beside the config, readable by its owner alone
    assert "console login: admin@example.com / " in r.output
    password_file = target / "admin.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    engine = make_engine(cfg.resolved_database_url())
    try:
        user = passwords.check_login(engine, "admin@example.com", password_file.read_text().strip())
        assert "platform_admin" in user["roles"]
    finally:
        engine.dispose()
    path.write_text(text + "# my edit\n")
    r = cli("init", "--dir", str(target))
    assert r.exit_code != 0
    assert "exists" in r.output
    assert path.read_text().endswith("# my edit\n")


def test_keys_create_list_revoke(config_file: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, cfg = config_file
    r = cli(
        "keys", "create", "--config", str(path), "--department", "hr", "--role", "builder", "--name", "ci-bot"
    )
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    key = lines[-1]
    prefix = parse_prefix(key)
    assert prefix is not None, f"the last line is not a key alone: {key!r}"
    assert key.strip() == key and " " not in key
    assert sum(key in line for line in lines) == 1  # shown once
    r2 = cli(
        "keys",
        "create",
        "--config",
        str(path),
        "--department",
        "hr",
        "--name",
        "second",
        "--aliases",
        "chat-local",
    )
    assert r2.exit_code == 0, r2.output
    second = r2.stdout.strip().splitlines()[-1]

    listed = cli("keys", "list", "--config", str(path))
    assert listed.exit_code == 0, listed.output
    assert prefix in listed.stdout and parse_prefix(second) in listed.stdout
    assert key not in listed.stdout and key[14:] not in listed.stdout
    assert "ci-bot" in listed.stdout and "builder" in listed.stdout

    with run_gateway(cfg, tmp_path) as gw:  # a server on that database
        with gw.client(key) as c:
            r = c.get("/v1/models")
            assert r.status_code == 200, r.text
            assert "chat-local" in {m["id"] for m in r.json()["data"]}
            assert c.get("/api/runs").status_code == 200  # builders read their department's runs
        with gw.client(second) as c:
            assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["chat-local"]
        revoked = cli("keys", "revoke", "--config", str(path), prefix)
        assert revoked.exit_code == 0, revoked.output
        assert prefix in revoked.stdout
        deadline = time.monotonic() + 5
        with gw.client(key) as c:
            while (r := c.get("/v1/models")).status_code == 200:
                assert time.monotonic() < deadline, "revoked key still accepted after 5 s"
                time.sleep(0.05)
            assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"

    again = cli("keys", "revoke", "--config", str(path), prefix)
    assert again.exit_code != 0 and "already revoked" in again.output
    unknown = cli("keys", "revoke", "--config", str(path), "nosuchkey0")
    assert unknown.exit_code != 0 and "nosuchkey0" in unknown.output
    active = cli("keys", "list", "--config", str(path)).stdout
    assert prefix not in active and parse_prefix(second) in active
    assert prefix in cli("keys", "list", "--config", str(path), "--all").stdout


def test_keys_create_refuses_bad_input(config_file: tuple[Path, dict[str, Any]]) -> None:
    path, _ = config_file
    r = cli("keys", "create", "--config", str(path), "--department", "atlantis")
    assert r.exit_code != 0 and "atlantis" in r.output
    r = cli("keys", "create", "--config", str(path), "--department", "hr", "--role", "emperor")
    assert r.exit_code != 0 and "emperor" in r.output
    assert parse_prefix((r.stdout.strip().splitlines() or [""])[-1]) is None


def test_keys_list_in_a_narrow_terminal_shows_whole_prefixes(
    config_file: tuple[Path, dict[str, Any]],
) -> None:
    path, _ = config_file
    r = cli("keys", "create", "--config", str(path), "--department", "hr", "--name", "a-rather-long-key-name")
    prefix = parse_prefix(r.stdout.strip().splitlines()[-1])
    assert prefix is not None
    listed = cli("keys", "list", "--config", str(path), env={"COLUMNS": "80"})
    assert listed.exit_code == 0
    assert prefix in listed.stdout, listed.stdout


def test_models_list(config_file: tuple[Path, dict[str, Any]]) -> None:
    path, _ = config_file
    r = cli("models", "list", "--config", str(path))
    assert r.exit_code == 0, r.output
    assert "chat-local" in r.stdout and "local-extractive" in r.stdout and "extractive-v1" in r.stdout


def test_bad_config_gives_a_clear_error(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("departments:\n  - id: hr\n   name: [unclosed\n")
    unknown_field = tmp_path / "unknown.yaml"
    unknown_field.write_text("server:\n  max_body_bytez: 100\n")
    bad_ref = tmp_path / "badref.yaml"
    bad_ref.write_text("providers:\n  - {name: openai, kind: openai, api_key: sk-raw-secret-value}\n")
    missing = tmp_path / "missing.yaml"
    for path, must_name in (
        (bad_yaml, "YAML"),
        (unknown_field, "server.max_body_bytez"),
        (bad_ref, "providers.0.api_key"),
        (missing, "not found"),
    ):
        for args in (["models", "list"], ["keys", "list"], ["db", "current"], ["serve"]):
            r = cli(*args, "--config", str(path))
            assert r.exit_code not in (0, None), (args, r.output)
            assert str(path) in r.output, (args, r.output)
            assert must_name in r.output, (args, r.output)
            assert "Traceback" not in r.output
            assert "sk-raw-secret-value" not in r.output


def test_db_current_and_upgrade_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "pg.yaml"
    path.write_text(
        yaml.safe_dump({"database": {"url": pg_url}, "departments": [{"id": "hr"}]}), encoding="utf-8"
    )
    r = cli("db", "current", "--config", str(path))
    assert r.exit_code == 0, r.output
    assert "current: none" in r.stdout and "aerodrome db upgrade" in r.stdout
    r = cli("db", "upgrade", "--config", str(path))
    assert r.exit_code == 0, r.output
    assert "was empty" in r.stdout
    r = cli("db", "current", "--config", str(path))
    assert "up to date" in r.stdout
    # the environment overrides the file's database
    r = cli("db", "current", env={"AERODROME_DATABASE_URL": pg_url})
    assert r.exit_code == 0 and "up to date" in r.stdout
    # now keys can be created on PostgreSQL
    r = cli("keys", "create", "--config", str(path), "--department", "hr")
    assert r.exit_code == 0, r.output
    assert parse_prefix(r.stdout.strip().splitlines()[-1]) is not None


def test_serve_refuses_a_stale_postgresql_schema(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "pg.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": pg_url}}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AERODROME_")}
    proc = subprocess.run(
        [AERODROME, "serve", "--config", str(path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert proc.returncode != 0
    assert "aerodrome db upgrade" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- the demo, as a new user runs it


def test_demo_serves_and_stops_cleanly(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AERODROME_", "OPENAI_"))}
    proc = subprocess.Popen(
        [AERODROME, "demo", "--dir", str(directory), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() - started < 180, "the demo did not start in 180 s"
            time.sleep(0.1)
        key_file = directory / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert parse_prefix(key) is not None

        client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        try:
            models = {m.id for m in client.models.list()}
            assert {"chat-small", "embed-small"} <= models
            resp = client.chat.completions.create(
                model="chat-small",
                messages=[
                    {
                        "role": "user",
                        "content": "[1] Parental leave is 16 weeks at full pay.\n"
                        "Question: How long is parental leave?",
                    }
                ],
            )
        finally:
            client.close()
        answer = resp.choices[0].message.content or ""
        assert "16 weeks" in answer and "[1]" in answer, answer
        _demo_use_cases(base, key)
        _demo_console_login(base, directory)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("the demo did not stop within 30 s of SIGINT")
    assert proc.returncode == 0, err
    assert key in out.splitlines(), "the demo prints the admin key on a line of its own"
    assert "Traceback" not in err


def _demo_console_login(base: str, directory: Path) -> None:
    """The first admin's console password is beside admin.key (mode 600) and signs in."""
    password_file = directory / "admin.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    with httpx.Client(base_url=base, timeout=10) as c:
        page = c.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        r = c.post(
            "/console/login",
            data={"email": "admin@example.com", "password": password, "csrf_token": token.group(1)},
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/assistant"
        assert "HR policy questions" in c.get("/console/assistant").text
    for email in ("employee@example.com", "hr.lead@example.com", "auditor@example.com"):
        assert (directory / "logins" / f"{email}.password").exists()


def _demo_streams(c: httpx.Client) -> None:
    """The demo's HR assistant streams its answer (output.stream) through the chat API."""
    for _ in range(4):  # a 5% review sample is drawn before the call: such a run does not stream
        body = {
            "model": "usecase:hr-policy-assistant",
            "messages": [
                {"role": "user", "content": "How many weeks of parental leave do birth parents get?"}
            ],
            "stream": True,
        }
        pieces: list[str] = []
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    pieces += [ch["delta"].get("content") or "" for ch in chunk.get("choices") or []]
        record = c.get(f"/api/runs/{r.headers['x-aerodrome-run-id']}").json()
        if record["meta"]["usecase"]["stream"]["why_not"] == "review:sample":
            continue
        assert record["meta"]["usecase"]["stream"] == {"streamed": True, "why_not": None}, record["meta"]
        assert "16 weeks" in "".join(pieces) and len([p for p in pieces if p]) > 3
        return
    pytest.fail("four runs in a row were sampled for review")


def _demo_use_cases(base: str, key: str) -> None:
    """The demo's three use cases answer on the local engine."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        listed = {u["id"] for u in c.get("/api/usecases").json()["data"]}
        assert listed == {"hr-policy-assistant", "support-reply-drafter", "contract-clause-extractor"}
        for _ in range(4):  # the use case holds a 5% sample for review: ask again if held
            r = c.post(
                "/v1/usecases/hr-policy-assistant/run",
                json={"inputs": {"question": "How many weeks of parental leave do birth parents get?"}},
            )
            body = r.json()
            assert r.status_code == 200 and body["status"] == "ok", body
            if body["review_status"] is None:
                break
            assert body["review_status"] == "pending" and "sample" in str(
                c.get(f"/api/reviews/{body['review_id']}").json()["reasons"]
            )
        assert "16 weeks" in body["output"] and body["citations"][0]["document_id"] == "leave-policy.md"
        _demo_streams(c)
        r = c.post(
            "/v1/usecases/hr-policy-assistant/run",
            json={"inputs": {"question": "What is the policy on pet insurance for llamas?"}},
        )
        assert r.json()["status"] == "fallback", r.json()
        # a ticket with an email address: pseudonymised for the model, flagged, held for a person
        r = c.post(
            "/v1/usecases/support-reply-drafter/run",
            json={
                "inputs": {
                    "ticket": "How much does Aerolite cost per user? Is there a free trial? jane@example.org"
                }
            },
        )
        body = r.json()
        assert body["review_status"] == "pending" and body["output"] is None, body
        assert "flagged:pii" in body["flags"]
        item = c.get(f"/api/reviews/{body['review_id']}").json()
        assert "8 euros" in item["draft"]["output"] and "30-day free trial" in item["draft"]["output"]
        contract = (
            "This Master Services Agreement is entered into on 1 March 2026 between Northwind Traders Ltd and "
            "Contoso Analytics Inc. The initial term is 24 months. Either party may terminate this Agreement by "
            "giving 90 days written notice. This Agreement is governed by the laws of the State of New York."
        )
        r = c.post("/v1/usecases/contract-clause-extractor/run", json={"inputs": {"contract": contract}})
        body = r.json()
        assert body["status"] == "ok", body
        assert body["output"]["parties"] == ["Northwind Traders Ltd", "Contoso Analytics Inc"]
        assert body["output"]["notice_days"] == 90 and body["output"]["term_months"] == 24


def test_demo_simulated_pilot_reports_the_simulated_truth(tmp_path: Path) -> None:
    """The whole path from request to report: verdicts match what the simulation made true."""
    directory = tmp_path / "demo"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AERODROME_", "OPENAI_"))}
    proc = subprocess.Popen(
        [AERODROME, "demo", "--dir", str(directory), "--port", str(port), "--simulate-pilot"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    report = directory / "reports" / "hr-policy-assistant-simulated-pilot.html"
    try:
        started = time.monotonic()
        while not report.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - started < 240, "the simulated pilot did not finish in 240 s"
            time.sleep(0.5)
        time.sleep(0.5)  # the Markdown report follows the HTML one
        key = (directory / "admin.key").read_text().strip()
        data = httpx.get(
            f"http://127.0.0.1:{port}/api/usecases/hr-policy-assistant/report",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ).json()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert data["simulated"] is True and data["criteria_locked"] is True
    outcomes = {c["metric"]: c["outcome"] for c in data["criteria"]}
    assert outcomes == {
        "useful_rate": "PASS",
        "time_saved_pct": "PASS",
        "p95_latency_s": "PASS",
        "adoption_rate": "FAIL",
    }
    assert data["recommendation"] == "redesign"
    saved = data["metrics"]["time_saved_pct"]
    assert saved["low"] <= 0.35 <= saved["high"]  # the simulated truth is inside the interval
    html = report.read_text(encoding="utf-8")
    assert "SIMULATION" in html and "REDESIGN" in html
    assert "SIMULATION" in (directory / "reports" / "hr-policy-assistant-simulated-pilot.md").read_text()
    assert "SIMULATION" in out and "Traceback" not in err
