"""What the evidence metrics read from feedback: the latest caller rating of each run, counted,
and the runs a feedback flagged that no guardrail had flagged.

Split from :mod:`aerodrome.evidence.metrics` (house rule: modules under 800 lines). Both read the
feedback table directly (it holds a tenth of the runs or fewer), filtered by the metric's scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, case, func, literal_column, select

from aerodrome.evidence import rollups
from aerodrome.storage.tables import feedback, runs

if TYPE_CHECKING:
    from aerodrome.evidence.metrics import Scope

POSITIVE_SCORE = 0.75
"""A rating is positive from this score up: "up", or 4 and 5 on the 1-5 scale."""


@dataclass(slots=True)
class Rating:
    """``n`` runs whose latest caller rating is by ``user`` and positive (or not)."""

    department: str
    user: str
    positive: bool
    n: int


def in_window(col: Any, start: datetime | None, end: datetime) -> Any:
    return and_(col >= start, col < end) if start is not None else col < end


def _feedback_flagged_expr(dialect: str) -> Any:
    if dialect == "postgresql":
        return literal_column(
            "CASE WHEN json_typeof(feedback.flags) = 'array' THEN json_array_length(feedback.flags) ELSE 0 END"
        )
    return literal_column("json_array_length(feedback.flags)")


def ratings(conn: Connection, scope: Scope, start: datetime | None, end: datetime, keep: Any) -> list[Rating]:
    """The latest caller rating of each run, counted in SQL per department, author and sign."""
    conds = [
        feedback.c.usecase_id == scope.usecase_id,
        feedback.c.author_role == "caller",
        feedback.c.score.is_not(None),
        in_window(feedback.c.created_at, start, end),
    ]
    if scope.department is not None:
        conds.append(feedback.c.department_id == scope.department)
    newest_first = func.row_number().over(
        partition_by=feedback.c.run_id, order_by=(feedback.c.created_at.desc(), feedback.c.id.desc())
    )
    ranked = (
        select(
            feedback.c.department_id,
            feedback.c.author_user_id,
            feedback.c.author,
            case((feedback.c.score >= POSITIVE_SCORE, 1), else_=0).label("positive"),
            newest_first.label("rank"),
        )
        .where(*conds)
        .subquery()
    )
    keys = (ranked.c.department_id, ranked.c.author_user_id, ranked.c.author, ranked.c.positive)
    query = select(*keys, func.count()).where(ranked.c.rank == 1).group_by(*keys)
    return [
        Rating(d or "", user_id or author, bool(positive), int(n))
        for d, user_id, author, positive, n in conn.execute(query)
        if keep(user_id, author)
    ]


def flagged_runs(
    conn: Connection, scope: Scope, start: datetime | None, end: datetime, keep: Any
) -> dict[str, str]:
    """Runs in scope flagged by a feedback (any author) that no guardrail had flagged:
    run id → department ("" for none)."""
    dialect = conn.dialect.name
    fconds = [feedback.c.usecase_id == scope.usecase_id, _feedback_flagged_expr(dialect) > 0]
    if start is not None:  # feedback comes after its run: none before the window is needed
        fconds.append(feedback.c.created_at >= start)
    # The flagged feedback first (a few hundred rows), then their runs by primary key: as a plain
    # join, SQLite (no statistics) walked every run of the use case looking up its feedback,
    # 10-20x slower at 100k runs.
    flagged = select(feedback.c.run_id).where(*fconds).cte("flagged_feedback").prefix_with("MATERIALIZED")
    conds = [
        in_window(runs.c.created_at, start, end),
        runs.c.use_case_id == scope.usecase_id,
        runs.c.endpoint == rollups.EVIDENCE_ENDPOINT,
    ]
    if scope.department is not None:
        conds.append(runs.c.department_id == scope.department)
    query = (
        select(runs.c.id, runs.c.department_id, rollups.user_key_expr(), rollups.flagged_expr(dialect))
        .select_from(flagged.join(runs, runs.c.id == flagged.c.run_id))
        .where(*conds)
    )
    return {
        run_id: d or ""
        for run_id, d, user, by_guardrail in conn.execute(query)
        if not by_guardrail and keep(user)
    }
