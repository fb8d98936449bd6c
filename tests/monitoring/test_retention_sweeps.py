"""Retention beyond the run table, on SQLite and PostgreSQL: review drafts, feedback text, the
dashboards' daily users, drift profiles and alert deliveries follow the same policy as runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from aerodrome.audit import trail
from aerodrome.config import RetentionConfig
from aerodrome.evidence.report import _failure_modes
from aerodrome.monitoring.retention import purge
from aerodrome.monitoring.retention_sweeps import PURGED_DRAFT
from aerodrome.monitoring.run_lookup import FoundRun
from aerodrome.review.outcome import view
from aerodrome.storage.tables import (
    alert_deliveries,
    alerts,
    drift_profiles,
    feedback,
    review_items,
    run_daily_users,
)

NOW = datetime.now(UTC)
UC = "triage"
POLICY = {
    "content_days": 30,
    "metadata_days": 90,
    "batch_size": 2,  # several short transactions
    "departments": {"legal": {"content_days": None, "metadata_days": None}},
}


def _review(dept: str, age_days: float, status: str) -> dict[str, Any]:
    created = NOW - timedelta(days=age_days)
    released = status in ("approved", "edited")
    return {
        "id": uuid.uuid4().hex,
        "run_id": uuid.uuid4().hex,
        "usecase_id": UC,
        "spec_version": 1,
        "department_id": dept,
        "requester": "jane@example.com",
        "reasons": ["always"],
        "status": status,
        "draft": {
            "output": "Jane Doe earns 50k",
            "inputs": {"ticket": "salary of Jane Doe"},
            "citations": [],
        },
        "final": "Jane Doe earns 52k" if released else None,
        "decided_by": None if status in ("pending", "claimed") else "rev@example.com",
        "decided_at": None if status in ("pending", "claimed") else created + timedelta(hours=1),
        "note": "fixed the figure for Jane" if status != "pending" else None,
        "created_at": created,
    }


def _feedback(dept: str, age_days: float, *, text: bool = True) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "run_id": uuid.uuid4().hex,
        "usecase_id": UC,
        "department_id": dept,
        "author": "jane@example.com",
        "author_role": "caller",
        "rating": "down",
        "score": 0.0,
        "flags": ["wrong"],
        "correction": "Jane Doe earns 52k" if text else None,
        "comment": "my own salary is wrong" if text else None,
        "created_at": NOW - timedelta(days=age_days),
    }


def _daily_user(dept: str, age_days: int) -> dict[str, Any]:
    return {
        "day": (NOW - timedelta(days=age_days)).date(),
        "department_id": dept,
        "use_case_id": UC,
        "principal": "jane@example.com",
        "runs": 3,
    }


def _profile(dept: str, age_days: float) -> dict[str, Any]:
    hour = (NOW - timedelta(days=age_days)).replace(minute=0, second=0, microsecond=0)
    zero = dict.fromkeys(
        ("input_len_sum", "input_len_sq", "output_len_sum", "output_len_sq", "embedding_sq"), 0.0
    )
    counts = dict.fromkeys(("runs", "answered", "refusals", "input_n", "output_n", "embedded"), 1)
    return {
        "usecase_id": UC,
        "department_id": dept,
        "hour": hour,
        "writer": "w1",
        **zero,
        **counts,
        "updated_at": hour,
    }


def _alert(engine: Engine) -> str:
    alert_id = uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(
            alerts.insert(),
            {
                "id": alert_id,
                "rule": "errors",
                "origin": "platform",
                "metric": "error_rate",
                "scope_kind": "usecase",
                "scope_id": UC,
                "departments": ",hr,",
                "severity": "warning",
                "status": "resolved",
                "threshold": 0.1,
                "side": "above",
                "window_s": 3600,
                "samples": 10,
                "summary": "errors",
                "opened_at": NOW - timedelta(days=200),
            },
        )
    return alert_id


def _delivery(alert_id: str, age_days: float, status: str) -> dict[str, Any]:
    created = NOW - timedelta(days=age_days)
    return {
        "id": uuid.uuid4().hex,
        "alert_id": alert_id,
        "event": "fired",
        "webhook": "ops",
        "payload": {"text": "errors on triage"},
        "status": status,
        "attempts": 1,
        "next_attempt_at": created,
        "created_at": created,
    }


def _ids(engine: Engine, table: Any) -> set[Any]:
    with engine.connect() as conn:
        return set(conn.execute(select(table.c.id)).scalars())


def test_content_and_history_beside_the_runs_follow_the_policy(engine: Engine) -> None:
    reviews = {
        "hr_decided_old": _review("hr", 40, "edited"),
        "hr_rejected_old": _review("hr", 40, "rejected"),
        "hr_pending_old": _review("hr", 40, "pending"),
        "hr_claimed_old": _review("hr", 40, "claimed"),
        "hr_decided_new": _review("hr", 5, "approved"),
        "legal_decided_old": _review("legal", 400, "approved"),
    }
    feedbacks = {
        "hr_old": _feedback("hr", 40),
        "hr_new": _feedback("hr", 5),
        "hr_old_no_text": _feedback("hr", 40, text=False),
        "legal_old": _feedback("legal", 400),
    }
    alert_id = _alert(engine)
    deliveries = {
        "sent_old": _delivery(alert_id, 100, "sent"),
        "failed_old": _delivery(alert_id, 100, "failed"),
        "pending_old": _delivery(alert_id, 100, "pending"),
        "sent_new": _delivery(alert_id, 10, "sent"),
    }
    with engine.begin() as conn:
        conn.execute(review_items.insert(), list(reviews.values()))
        conn.execute(feedback.insert(), list(feedbacks.values()))
        conn.execute(
            run_daily_users.insert(),
            [_daily_user("hr", 100), _daily_user("hr", 10), _daily_user("legal", 400), _daily_user("", 100)],
        )
        conn.execute(
            drift_profiles.insert(), [_profile("hr", 100), _profile("hr", 10), _profile("legal", 400)]
        )
        conn.execute(alert_deliveries.insert(), list(deliveries.values()))

    counts = purge(engine, RetentionConfig.model_validate(POLICY), now=NOW)["elsewhere"]
    assert counts["review_content_cleared"] == 2
    assert counts["feedback_text_cleared"] == 1
    assert counts["daily_users_deleted"] == 2  # hr and the department-less day; legal keeps its own
    assert counts["drift_profiles_deleted"] == 1
    assert counts["alert_deliveries_deleted"] == 2
    assert counts["by_department"]["*"]["review_content_cleared"] == 2  # hr: the platform policy
    assert "legal" not in counts["by_department"]

    with engine.connect() as conn:
        items = {r["id"]: dict(r) for r in conn.execute(select(review_items)).mappings()}
        texts = {r.id: (r.correction, r.comment, r.flags, r.score) for r in conn.execute(select(feedback))}
        days = {(r.department_id, r.day) for r in conn.execute(select(run_daily_users))}
        profiles = {(r.department_id, r.hour) for r in conn.execute(select(drift_profiles))}
    for name in ("hr_decided_old", "hr_rejected_old"):
        item = items[reviews[name]["id"]]
        assert item["draft"] == PURGED_DRAFT and item["final"] is None and item["note"] is None, name
        assert item["content_purged_at"] is not None
        assert item["status"] == reviews[name]["status"] and item["decided_by"] == "rev@example.com"
    for name in ("hr_pending_old", "hr_claimed_old", "hr_decided_new", "legal_decided_old"):
        item = items[reviews[name]["id"]]
        assert item["draft"] == reviews[name]["draft"] and item["content_purged_at"] is None, name
    assert texts[feedbacks["hr_old"]["id"]] == (None, None, ["wrong"], 0.0), "the rating and flags stay"
    assert texts[feedbacks["hr_new"]["id"]][0] == "Jane Doe earns 52k"
    assert texts[feedbacks["legal_old"]["id"]][1] == "my own salary is wrong"
    assert {d for d, _ in days} == {"hr", "legal"} and len(days) == 2
    assert {d for d, _ in profiles} == {"hr", "legal"} and len(profiles) == 2
    assert _ids(engine, alert_deliveries) == {deliveries["pending_old"]["id"], deliveries["sent_new"]["id"]}

    events = trail.list_events(engine, trail.AuditFilter(action="retention.purge"))["data"]
    assert events[0]["details"]["elsewhere"]["review_content_cleared"] == 2
    again = purge(engine, RetentionConfig.model_validate(POLICY), now=NOW)["elsewhere"]
    assert all(again[k] == 0 for k in again if k != "by_department"), (
        "nothing left: cleared rows are not redone"
    )


def test_a_cleared_review_says_so_to_its_caller_and_leaves_the_report_examples(engine: Engine) -> None:
    old, new = _review("hr", 40, "edited"), _review("hr", 5, "edited")
    with engine.begin() as conn:
        conn.execute(review_items.insert(), [old, new])
    purge(engine, RetentionConfig.model_validate(POLICY), now=NOW)
    with engine.connect() as conn:
        items = {r["run_id"]: dict(r) for r in conn.execute(select(review_items)).mappings()}
        modes = _failure_modes(conn, UC, None, None)
    seen = view(old["run_id"], FoundRun(None, items[old["run_id"]], "hr", None, None))
    assert seen["output"] is None and seen["review_status"] == "edited"
    assert seen["content_purged_at"] is not None
    kept = view(new["run_id"], FoundRun(None, items[new["run_id"]], "hr", None, None))
    assert kept["output"] == "Jane Doe earns 52k" and "content_purged_at" not in kept
    assert modes["review_outcomes"]["edited"] == 2, "the counts keep every decision"
    assert [c["run_id"] for c in modes["corrections"]] == [new["run_id"]], "examples only with content"
