"""Feedback on runs: a rating, flags, a correction and a comment, from the caller or a reviewer.

``rating`` is ``"up"``, ``"down"`` or an integer 1-5; the ``score`` column puts every rating on
0..1 (up 1, down 0, n → (n - 1) / 4) so that both kinds add up in the evidence engine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from aerodrome.errors import BadRequest
from aerodrome.identity.principal import Principal
from aerodrome.monitoring.run_lookup import RunLookup, check_access
from aerodrome.storage.tables import feedback

FLAGS: tuple[str, ...] = ("wrong", "harmful", "hallucination", "off_policy", "other")
MAX_CORRECTION_CHARS = 20000
MAX_COMMENT_CHARS = 4000
MAX_RUN_ID_CHARS = 32


@dataclass(frozen=True, slots=True)
class Feedback:
    """Validated feedback, before it is tied to its run."""

    run_id: str
    rating: str | None
    score: float | None
    flags: list[str]
    correction: str | None
    comment: str | None


def parse_rating(value: Any) -> tuple[str | None, float | None]:
    """``"up"`` / ``"down"`` / 1-5 → (the rating as stored, its score on 0..1)."""
    if value is None:
        return None, None
    if value in ("up", "down") and isinstance(value, str):
        return value, 1.0 if value == "up" else 0.0
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return str(value), (value - 1) / 4
    raise BadRequest(
        'rating must be "up", "down" or an integer from 1 to 5', param="rating", code="invalid_value"
    )


def _flags(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"flags must be a list of {list(FLAGS)}", param="flags", code="invalid_type")
    out: list[str] = []
    for i, flag in enumerate(value):
        if flag not in FLAGS or not isinstance(flag, str):
            raise BadRequest(
                f"flags[{i}] must be one of {list(FLAGS)}, not {flag!r}",
                param=f"flags[{i}]",
                code="invalid_value",
            )
        if flag not in out:
            out.append(flag)
    return out


def _text(name: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", param=name, code="invalid_type")
    value = value.strip()
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters", param=name, code="invalid_value")
    return value or None


def validate(
    *, run_id: Any, rating: Any = None, flags: Any = None, correction: Any = None, comment: Any = None
) -> Feedback:
    """Check every field (400 naming the first bad one); at least one of the four must be given."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise BadRequest(
            "run_id is required (the x-aerodrome-run-id of the answer)",
            param="run_id",
            code="missing_required_parameter",
        )
    if len(run_id) > MAX_RUN_ID_CHARS:
        raise BadRequest(
            f"run_id is longer than {MAX_RUN_ID_CHARS} characters", param="run_id", code="invalid_value"
        )
    stored_rating, score = parse_rating(rating)
    fb = Feedback(
        run_id=run_id.strip(),
        rating=stored_rating,
        score=score,
        flags=_flags(flags),
        correction=_text("correction", correction, MAX_CORRECTION_CHARS),
        comment=_text("comment", comment, MAX_COMMENT_CHARS),
    )
    if fb.rating is None and not fb.flags and fb.correction is None and fb.comment is None:
        raise BadRequest("give at least one of rating, flags, correction or comment", code="empty_feedback")
    return fb


def insert(
    conn: Connection,
    *,
    run_id: str,
    usecase_id: str | None,
    spec_version: int | None,
    department_id: str | None,
    author: Principal,
    author_role: str,
    rating: str | None = None,
    score: float | None = None,
    flags: list[str] | None = None,
    correction: str | None = None,
    comment: str | None = None,
) -> str:
    """Write one feedback row inside the caller's transaction; returns its id."""
    feedback_id = uuid.uuid4().hex
    conn.execute(
        feedback.insert().values(
            id=feedback_id,
            run_id=run_id,
            usecase_id=usecase_id,
            spec_version=spec_version,
            department_id=department_id,
            author=author.name,
            author_key_id=author.key_id,
            author_user_id=author.user_id,
            author_role=author_role,
            rating=rating,
            score=score,
            flags=list(flags or []),
            correction=correction,
            comment=comment,
            created_at=datetime.now(UTC),
        )
    )
    return feedback_id


def submit(engine: Engine, runs: RunLookup, author: Principal, fb: Feedback) -> dict[str, Any]:
    """Store feedback on a run: its caller's, or a reviewer's whose ``reviews.read`` scope covers it.

    404 ``run_not_found`` for an unknown run, 403 for somebody else's.
    """
    run = runs.find(fb.run_id, content=False)  # who, where and which use case: no content needed
    by_caller = check_access(author, run, "reviews.read")
    with engine.begin() as conn:
        feedback_id = insert(
            conn,
            run_id=fb.run_id,
            usecase_id=run.use_case_id,
            spec_version=run.spec_version,
            department_id=run.department_id,
            author=author,
            author_role="caller" if by_caller else "reviewer",
            rating=fb.rating,
            score=fb.score,
            flags=fb.flags,
            correction=fb.correction,
            comment=fb.comment,
        )
    return {
        "id": feedback_id,
        "object": "feedback",
        "run_id": fb.run_id,
        "author_role": "caller" if by_caller else "reviewer",
        "rating": fb.rating,
        "score": fb.score,
        "flags": fb.flags,
    }
