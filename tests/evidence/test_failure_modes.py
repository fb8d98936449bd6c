"""The report's failure modes, counted in SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from aerodrome.evidence.report import _failure_modes
from aerodrome.storage.tables import feedback, review_items

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def _fb(i: int, flags: list[str], comment: str | None = None, usecase: str = "uc") -> dict[str, Any]:
    return {
        "id": f"f{i:031d}",
        "run_id": f"r{i:031d}",
        "usecase_id": usecase,
        "spec_version": 1,
        "department_id": "hr",
        "author": "u@example.com",
        "author_key_id": None,
        "author_user_id": None,
        "author_role": "caller",
        "rating": "down" if flags else "up",
        "score": 0.0 if flags else 1.0,
        "flags": flags,
        "correction": None,
        "comment": comment,
        "created_at": T0 + timedelta(minutes=i),
    }


def _item(
    i: int, status: str, reasons: list[str], note: str | None = None, final: Any = None
) -> dict[str, Any]:
    return {
        "id": f"v{i:031d}",
        "run_id": f"q{i:031d}",
        "usecase_id": "uc",
        "spec_version": 1,
        "department_id": "hr",
        "requester": "u@example.com",
        "key_id": None,
        "user_id": None,
        "reasons": reasons,
        "status": status,
        "draft": {"output": "draft"},
        "final": final,
        "note": note,
        "created_at": T0 + timedelta(minutes=i),
    }


def test_failure_modes_count_flags_and_reasons_with_examples(engine: Engine) -> None:
    rows = (
        [_fb(i, ["wrong"], f"wrong {i}") for i in range(5)]
        + [_fb(10 + i, ["wrong", "hallucination"]) for i in range(3)]
        + [_fb(20 + i, []) for i in range(7)]
        + [_fb(30, ["harmful"], "other use case", usecase="other")]
        + [_fb(40, ["off_policy"], "too late")]
    )
    items = (
        [_item(i, "approved", ["flagged:pii"]) for i in range(4)]
        + [_item(10 + i, "rejected", ["flagged:pii", "risk_high"], note=f"no {i}") for i in range(2)]
        + [_item(20, "edited", ["sample"], final={"answer": 42})]
        + [_item(21, "pending", ["sample"])]
    )
    with engine.begin() as conn:
        conn.execute(feedback.insert(), rows)
        conn.execute(review_items.insert(), items)
    with engine.connect() as conn:
        found = _failure_modes(conn, "uc", T0, T0 + timedelta(minutes=39))
    assert [(f["flag"], f["count"]) for f in found["feedback_flags"]] == [("wrong", 8), ("hallucination", 3)]
    wrong = found["feedback_flags"][0]["examples"]
    assert [e["comment"] for e in wrong] == ["wrong 4", "wrong 3", "wrong 2"]  # newest first, with text only
    assert found["feedback_flags"][1]["examples"] == []
    assert dict((r["reason"], r["count"]) for r in found["review_reasons"]) == {
        "flagged:pii": 6,
        "risk_high": 2,
        "sample": 2,
    }
    assert found["review_outcomes"] == {"approved": 4, "rejected": 2, "edited": 1, "pending": 1}
    assert [e["note"] for e in found["rejections"]] == ["no 1", "no 0"]
    assert found["corrections"][0]["correction"] == '{"answer":42}'
