"""`aerodrome audit verify` and /api/audit filters: tampering is detected, auditors can search."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import update
from typer.testing import CliRunner

from aerodrome.cli import app
from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import audit_events
from tests.harness import Gateway, base_config

runner = CliRunner()


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "aerodrome.yaml"
    path.write_text(
        yaml.safe_dump(base_config(None, db_url=f"sqlite:///{tmp_path}/audit.db")), encoding="utf-8"
    )
    return path


def test_cli_verify_detects_an_edited_row(tmp_path: Path) -> None:
    cfg = str(_config(tmp_path))
    env = {"AERODROME_CONFIG": None, "COLUMNS": "200"}
    assert (
        runner.invoke(app, ["keys", "create", "--config", cfg, "-d", "hr", "-r", "user"], env=env).exit_code
        == 0
    )
    ok = runner.invoke(app, ["audit", "verify", "--config", cfg], env=env)
    assert ok.exit_code == 0 and "intact" in ok.output
    engine = make_engine(f"sqlite:///{tmp_path}/audit.db")
    with engine.begin() as conn:  # someone edits history: the key was "really" created for finance
        conn.execute(
            update(audit_events)
            .where(audit_events.c.action == "key.create")
            .values(details={"department": "finance"})
        )
    engine.dispose()
    broken = runner.invoke(app, ["audit", "verify", "--config", cfg], env=env)
    assert broken.exit_code == 1
    assert "broken at event" in broken.output


def test_api_audit_filters(gateway: Gateway) -> None:
    key = gateway.make_key("hr", name="bot")
    with gateway.client(gateway.admin_key) as c:
        assert c.delete(f"/api/keys/{key.split('_')[1]}").status_code == 200
        keys_only = c.get("/api/audit", params={"action": "key."}).json()
        assert keys_only["total"] >= 3  # the admin's key, bot's creation and revocation
        assert {e["action"] for e in keys_only["data"]} <= {"key.create", "key.revoke"}
        revokes = c.get("/api/audit", params={"action": "key.revoke"}).json()["data"]
        assert len(revokes) == 1 and revokes[0]["actor"] == "admin@example.com"
        depts = c.get("/api/audit", params={"object_type": "department", "limit": 1}).json()
        assert len(depts["data"]) == 1 and depts["total"] >= 3
        verify = c.get("/api/audit/verify").json()
        assert verify["ok"] and verify["head"] == c.get("/api/audit").json()["data"][0]["hash"]
    with gateway.client(gateway.make_key("hr", role="department_admin")) as c:
        assert c.get("/api/audit").status_code == 403
    with gateway.client(gateway.make_key("platform", role="auditor")) as c:
        assert c.get("/api/audit", params={"action": "key.revoke"}).status_code == 200
