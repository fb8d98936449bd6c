"""Retention on SQLite and PostgreSQL: content cleared, old runs deleted, per department, in batches, audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from aerodrome.audit import trail
from aerodrome.config import RetentionConfig
from aerodrome.evidence import rollups
from aerodrome.monitoring.retention import purge
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.monitoring.runs import get_run
from aerodrome.storage.tables import audit_events, run_contents, runs

NOW = datetime.now(UTC)


def _run(
    dept: str | None, age_days: float, *, content: bool = True, usecase: str | None = None
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "request_id": "r",
        "created_at": NOW - timedelta(days=age_days),
        "endpoint": "usecase" if usecase else "chat",  # what the evidence rollups count
        "principal": "someone",
        "department_id": dept,
        "use_case_id": usecase,
        "status": "ok",
        "http_status": 200,
        "latency_ms": 10.0,
        "input": {"messages": [{"role": "user", "content": "salary of Jane Doe"}]} if content else None,
        "output": {"text": "it is 50k"} if content else None,
    }


def _store(engine: Engine, records: list[dict[str, Any]]) -> None:
    writer = RunWriter(engine, flush_interval_s=0.01)  # the gateway's own writer: None as it writes it
    for r in records:
        writer.submit(r)
    assert writer.wait_idle(10)
    writer.close()


def _by_id(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every stored run with its content, as the API shows it."""
    with engine.connect() as conn:
        ids = list(conn.execute(select(runs.c.id)).scalars())
    return {i: run for i in ids if (run := get_run(engine, i)) is not None}


def _content_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(run_contents.c.run_id)).scalars())


def test_content_then_records_go_per_department_and_the_purge_is_audited(engine: Engine) -> None:
    records = {
        "hr_old": _run("hr", 100),
        "hr_mid": _run("hr", 40),
        "hr_new": _run("hr", 1),
        "fin_old": _run("finance", 100),
        "fin_mid": _run("finance", 40),
        "legal_mid": _run("legal", 40),
        "none_old": _run(None, 100),
        "meta_only_old": _run("finance", 50, content=False),
    }
    _store(engine, list(records.values()))
    policy = RetentionConfig.model_validate(
        {
            "content_days": 30,
            "batch_size": 2,  # several short transactions
            "departments": {"hr": {"metadata_days": 60}, "legal": {"content_days": None}},
        }
    )
    counts = purge(engine, policy, now=NOW)
    left = _by_id(engine)
    ids = {k: v["id"] for k, v in records.items()}
    assert ids["hr_old"] not in left, "hr keeps runs 60 days"
    for name in ("hr_mid", "fin_old", "fin_mid", "none_old"):
        assert left[ids[name]]["input"] is None and left[ids[name]]["output"] is None, name
        assert left[ids[name]]["latency_ms"] == 10.0, "the record and its figures stay"
    assert left[ids["hr_new"]]["input"] is not None, "recent content stays"
    assert left[ids["legal_mid"]]["output"] == {"text": "it is 50k"}, "legal keeps content forever"
    assert counts["runs_deleted"] == 1 and counts["content_cleared"] == 4
    assert _content_ids(engine) == {ids["hr_new"], ids["legal_mid"]}, "cleared and deleted content is gone"
    assert counts["by_department"]["hr"] == {"content_cleared": 1, "runs_deleted": 1}
    assert counts["by_department"]["*"] == {"content_cleared": 3, "runs_deleted": 0}
    events = trail.list_events(engine, trail.AuditFilter(action="retention.purge"))["data"]
    assert len(events) == 1 and events[0]["actor"] == "system:retention"
    assert events[0]["details"]["runs_deleted"] == 1 and events[0]["details"]["content_cleared"] == 4
    assert trail.verify(engine).ok
    again = purge(engine, policy, now=NOW)  # nothing left to do, and the audit trail is never purged
    assert again["runs_deleted"] == again["content_cleared"] == 0
    with engine.connect() as conn:
        assert len(conn.execute(select(audit_events.c.seq)).all()) == 2


def test_use_case_runs_are_deleted_only_once_the_rollups_hold_them(engine: Engine) -> None:
    plain, usecase = _run("hr", 100), _run("hr", 100, usecase="triage")
    _store(engine, [plain, usecase])
    policy = RetentionConfig(metadata_days=30)
    purge(engine, policy, now=NOW)
    assert set(_by_id(engine)) == {usecase["id"]}, "not rolled up yet: the evidence still needs it"
    assert rollups.update(engine, now=NOW) == 1
    purge(engine, policy, now=NOW)
    assert _by_id(engine) == {}
    assert _content_ids(engine) == set(), "a deleted run's content goes with it"


def test_a_department_policy_inherits_what_it_does_not_set() -> None:
    cfg = RetentionConfig.model_validate(
        {"content_days": 7, "metadata_days": 365, "departments": {"hr": {"content_days": 1}}}
    )
    assert cfg.policy_for("hr").model_dump() == {"content_days": 1, "metadata_days": 365}
    assert cfg.policy_for("finance").model_dump() == {"content_days": 7, "metadata_days": 365}
    assert cfg.enabled and not RetentionConfig().enabled
