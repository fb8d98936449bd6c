"""Retention: run content and run records older than the policy allows are purged in small batches.

Per department (or the platform's default): ``content_days`` after which a run's input and
output are cleared (its ``run_contents`` row is deleted; the record and its counts stay),
``metadata_days`` after which the run is deleted, with its content. Use-case runs are deleted
only once the evidence rollups hold them, so reports keep their history. Each batch is its own
short transaction (``batch_size`` rows), so the gateway's run writer never waits long. Audit
events are never purged; each purge writes one, with counts. Copies of content and personal
history kept beside the runs (review drafts, feedback text, the dashboards' daily users, drift
profiles, alert deliveries) are swept by the same policy: :mod:`.retention_sweeps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, or_, select

from aerodrome.audit import trail
from aerodrome.config import RetentionConfig
from aerodrome.evidence.rollups import watermark
from aerodrome.monitoring.retention_sweeps import batched, departments, sweep
from aerodrome.storage.tables import run_contents, runs

ACTOR = "system:retention"


@dataclass(slots=True)
class PurgeCounts:
    content_cleared: int = 0
    runs_deleted: int = 0
    by_department: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, department: str, what: str, n: int) -> None:
        if n:
            slot = self.by_department.setdefault(department, {"content_cleared": 0, "runs_deleted": 0})
            slot[what] += n
            setattr(self, what, getattr(self, what) + n)


def _delete_runs(conn: Connection, n: int, cond: ColumnElement[bool]) -> int:
    ids = list(conn.execute(select(runs.c.id).where(cond).limit(n)).scalars())
    if ids:
        conn.execute(delete(run_contents).where(run_contents.c.run_id.in_(ids)))
        conn.execute(delete(runs).where(runs.c.id.in_(ids)))
    return len(ids)


def _clear_contents(conn: Connection, n: int, cond: ColumnElement[bool]) -> int:
    with_content = runs.join(run_contents, run_contents.c.run_id == runs.c.id)
    ids = select(run_contents.c.run_id).select_from(with_content).where(cond).limit(n)
    return int(conn.execute(delete(run_contents).where(run_contents.c.run_id.in_(ids))).rowcount or 0)


def purge(engine: Engine, config: RetentionConfig, *, now: datetime | None = None) -> dict[str, Any]:
    """Apply the retention policy once; returns the counts (also written as an audit event)."""
    now = now or datetime.now(UTC)
    counts = PurgeCounts()
    rolled_up = watermark(engine)
    for label, scope, policy in departments(
        config, runs.c.department_id
    ):  # delete first: no point clearing what goes
        if policy.metadata_days is not None:
            cutoff = now - timedelta(days=policy.metadata_days)
            conds = [scope, runs.c.created_at < cutoff]
            if rolled_up is None:  # keep use-case runs until the rollups hold them
                conds.append(runs.c.use_case_id.is_(None))
            else:
                conds.append(or_(runs.c.use_case_id.is_(None), runs.c.created_at < rolled_up))
            cond = and_(*conds)

            def remove(conn: Connection, n: int, cond: ColumnElement[bool] = cond) -> int:
                return _delete_runs(conn, n, cond)

            counts.add(label, "runs_deleted", batched(engine, remove, config.batch_size))
        if policy.content_days is not None:
            cutoff = now - timedelta(days=policy.content_days)
            cond = and_(scope, runs.c.created_at < cutoff)

            def clear(conn: Connection, n: int, cond: ColumnElement[bool] = cond) -> int:
                return _clear_contents(conn, n, cond)

            counts.add(label, "content_cleared", batched(engine, clear, config.batch_size))
    elsewhere = sweep(engine, config, now)
    details = {
        "content_cleared": counts.content_cleared,
        "runs_deleted": counts.runs_deleted,
        "by_department": counts.by_department,
        "elsewhere": elsewhere,
        "policy": config.model_dump(mode="json", exclude={"interval_s", "batch_size"}),
    }
    with engine.begin() as conn:
        trail.record(
            conn, actor=ACTOR, action="retention.purge", object_type="runs", object_id="runs", details=details
        )
    return details
