"""Retention beyond the run table: content and personal history kept elsewhere, swept by the same policy.

A run's input and output are not the only copies of what people asked and were answered, and
the run table is not the only record of who used what. :func:`sweep` applies the retention
policy (per department, else the platform's) to the rest:

- **review items** (content_days): a decided item's held draft (inputs, output, citations), the
  output released and the reviewer's note are cleared; the item, its status, reasons, reviewer
  and times stay (the evidence counts approvals and edits), and ``content_purged_at`` says when.
  Pending and claimed items are kept whole: a reviewer still needs them.
- **feedback** (content_days): the correction and comment are cleared; the rating and flags stay.
- **dashboards' daily users** (metadata_days): who ran something on a day, per department; the
  days' aggregate figures (runs, cost, latency) stay.
- **drift profiles** (metadata_days of their department): hourly aggregates of inputs.
- **alert deliveries** (the platform's metadata_days): delivered or failed webhook calls and
  their payloads; pending ones are kept.

Each batch is its own short transaction. The counts go into the purge's audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, or_, select, true, tuple_, update

from aerodrome.config import RetentionConfig, RetentionPolicy
from aerodrome.storage.tables import alert_deliveries, drift_profiles, feedback, review_items, run_daily_users

DECIDED = ("approved", "edited", "rejected")
PURGED_DRAFT = {"content_purged": True}
"""What a review item's draft holds once retention cleared it."""


def batched(engine: Engine, step: Callable[[Connection, int], int], batch_size: int) -> int:
    """Run ``step`` (at most ``batch_size`` rows, returns how many) in short transactions until done."""
    total = 0
    while True:
        with engine.begin() as conn:
            n = step(conn, batch_size)
        total += n
        if n < batch_size:
            return total


def departments(
    config: RetentionConfig, column: Any
) -> list[tuple[str, ColumnElement[bool], RetentionPolicy]]:
    """(label, rows of it, policy): each configured department, then everyone else ("*")."""
    named = sorted(config.departments)
    out: list[tuple[str, ColumnElement[bool], RetentionPolicy]] = [
        (d, column == d, config.policy_for(d)) for d in named
    ]
    rest = or_(column.is_(None), column.not_in(named)) if named else true()
    out.append(("*", rest, config.policy_for(None)))
    return out


def _clear_reviews(cond: ColumnElement[bool], now: datetime) -> Callable[[Connection, int], int]:
    def step(conn: Connection, n: int) -> int:
        ids = list(conn.execute(select(review_items.c.id).where(cond).limit(n)).scalars())
        if ids:
            conn.execute(
                update(review_items)
                .where(review_items.c.id.in_(ids))
                .values(draft=PURGED_DRAFT, final=None, note=None, content_purged_at=now)
            )
        return len(ids)

    return step


def _clear_feedback(cond: ColumnElement[bool]) -> Callable[[Connection, int], int]:
    def step(conn: Connection, n: int) -> int:
        ids = list(conn.execute(select(feedback.c.id).where(cond).limit(n)).scalars())
        if ids:
            conn.execute(update(feedback).where(feedback.c.id.in_(ids)).values(correction=None, comment=None))
        return len(ids)

    return step


def _delete_where(table: Any, key: list[Any], cond: ColumnElement[bool]) -> Callable[[Connection, int], int]:
    """Delete rows of ``table`` matching ``cond``, a batch of primary keys ``key`` at a time."""

    def step(conn: Connection, n: int) -> int:
        rows = [tuple(r) for r in conn.execute(select(*key).where(cond).limit(n))]
        if rows:
            conn.execute(delete(table).where(tuple_(*key).in_(rows)))
        return len(rows)

    return step


def _delete_ids(table: Any, cond: ColumnElement[bool]) -> Callable[[Connection, int], int]:
    def step(conn: Connection, n: int) -> int:
        ids = list(conn.execute(select(table.c.id).where(cond).limit(n)).scalars())
        if ids:
            conn.execute(delete(table).where(table.c.id.in_(ids)))
        return len(ids)

    return step


def sweep(engine: Engine, config: RetentionConfig, now: datetime) -> dict[str, Any]:
    """Apply ``config`` to the content and history kept beside the runs; returns the counts,
    ``{what: total}`` and ``by_department: {label: {what: n}}`` (label "*": everyone else)."""
    totals = {
        "review_content_cleared": 0,
        "feedback_text_cleared": 0,
        "daily_users_deleted": 0,
        "drift_profiles_deleted": 0,
        "alert_deliveries_deleted": 0,
    }
    by_department: dict[str, dict[str, int]] = {}

    def count(label: str, what: str, n: int) -> None:
        if n:
            totals[what] += n
            slot = by_department.setdefault(label, {})
            slot[what] = slot.get(what, 0) + n

    size = config.batch_size
    for label, scope, policy in departments(config, review_items.c.department_id):
        if policy.content_days is not None:
            cutoff = now - timedelta(days=policy.content_days)
            cond = and_(
                scope,
                review_items.c.created_at < cutoff,
                review_items.c.status.in_(DECIDED),
                review_items.c.content_purged_at.is_(None),
            )
            count(label, "review_content_cleared", batched(engine, _clear_reviews(cond, now), size))
    for label, scope, policy in departments(config, feedback.c.department_id):
        if policy.content_days is not None:
            cutoff = now - timedelta(days=policy.content_days)
            cond = and_(
                scope,
                feedback.c.created_at < cutoff,
                or_(feedback.c.correction.is_not(None), feedback.c.comment.is_not(None)),
            )
            count(label, "feedback_text_cleared", batched(engine, _clear_feedback(cond), size))
    for label, scope, policy in departments(config, run_daily_users.c.department_id):
        if policy.metadata_days is not None:
            cutoff_day: date = (now - timedelta(days=policy.metadata_days)).date()
            cond = and_(scope, run_daily_users.c.day < cutoff_day)
            key = [run_daily_users.c[c] for c in ("day", "department_id", "use_case_id", "principal")]
            count(
                label, "daily_users_deleted", batched(engine, _delete_where(run_daily_users, key, cond), size)
            )
    for label, scope, policy in departments(config, drift_profiles.c.department_id):
        if policy.metadata_days is not None:
            cutoff = now - timedelta(days=policy.metadata_days)
            cond = and_(scope, drift_profiles.c.hour < cutoff)
            key = [drift_profiles.c[c] for c in ("usecase_id", "department_id", "hour", "writer")]
            count(
                label,
                "drift_profiles_deleted",
                batched(engine, _delete_where(drift_profiles, key, cond), size),
            )
    if config.metadata_days is not None:
        cutoff = now - timedelta(days=config.metadata_days)
        cond = and_(alert_deliveries.c.created_at < cutoff, alert_deliveries.c.status != "pending")
        count("*", "alert_deliveries_deleted", batched(engine, _delete_ids(alert_deliveries, cond), size))
    return {**totals, "by_department": by_department}
