"""The built-in job kinds: knowledge ingestion, evidence rollups, the retention purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aerodrome.config import PlatformConfig
from aerodrome.jobs.context import Job, JobContext
from aerodrome.jobs.queue import JobQueue
from aerodrome.jobs.registry import JobKind


def _ingest(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Sync one collection (the target) incrementally."""
    return ctx.knowledge().sync(job.target, job.progress)


def _rollup(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Bring the evidence rollups and the dashboards' daily rollups up to date (safe to run on
    several workers at once)."""
    from aerodrome.evidence import rollups
    from aerodrome.monitoring import daily_rollups

    done = rollups.update(ctx.engine)
    return {"done": done, "dashboard_runs": daily_rollups.update(ctx.engine)}


def _retention(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Purge run content and records past the retention policy, then old finished jobs."""
    from aerodrome.monitoring.retention import purge

    counts: dict[str, Any] = {"content_cleared": 0, "runs_deleted": 0}
    if ctx.config.retention.enabled:
        counts = purge(ctx.engine, ctx.config.retention)
    older = datetime.now(UTC) - timedelta(days=ctx.config.jobs.keep_days)
    counts["jobs_deleted"] = JobQueue(ctx.engine).purge_finished(older, ctx.config.retention.batch_size)
    counts["done"] = counts["content_cleared"] + counts["runs_deleted"]
    return counts


def _rollup_interval(config: PlatformConfig) -> float | None:
    return config.jobs.rollup_interval_s or None


def _retention_interval(config: PlatformConfig) -> float | None:
    return config.retention.interval_s  # also when no policy is set: old finished jobs go


INGEST = JobKind(name="ingest", run=_ingest)
ROLLUP = JobKind(name="rollup", run=_rollup, max_attempts=1, interval_s=_rollup_interval, target="runs")
RETENTION = JobKind(name="retention", run=_retention, interval_s=_retention_interval, target="runs")
