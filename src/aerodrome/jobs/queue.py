"""The job queue on the ``jobs`` table: enqueue, claim, lease, retry, finish (SQLite and PostgreSQL).

A worker claims the oldest due job with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL;
SQLite serialises writers, and the claim's conditional UPDATE makes one claimant win), holds
it under a lease it renews, and finishes it. Every write of a running job names its worker:
a worker that lost its lease (it stalled past it and the job was handed to another) changes
nothing any more. A job whose lease expired is retried, or failed when out of attempts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from aerodrome.errors import Conflict, NotFound
from aerodrome.storage.tables import job_schedules, jobs

ACTIVE = ("queued", "running")
STATUSES = ("queued", "running", "succeeded", "failed")


def now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    kind: str
    target: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    created_by: str


class JobQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ producers

    def enqueue(
        self,
        kind: str,
        target: str,
        *,
        payload: dict[str, Any] | None = None,
        created_by: str,
        max_attempts: int,
        exclusive: bool = True,
    ) -> str:
        with self.engine.begin() as conn:
            if exclusive:
                active = conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.kind == kind, jobs.c.target == target, jobs.c.status.in_(ACTIVE)
                    )
                ).first()
                if active is not None:
                    raise Conflict(
                        f"a {kind} job for {target!r} is already queued or running ({active.id})",
                        code="job_running",
                    )
            job_id = new_job_id()
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    kind=kind,
                    target=target,
                    status="queued",
                    done=0,
                    total=None,
                    message="queued",
                    payload=payload or {},
                    attempts=0,
                    max_attempts=max_attempts,
                    available_at=now(),
                    created_by=created_by,
                    created_at=now(),
                )
            )
        return job_id

    def retry(self, job_id: str, *, actor: str) -> None:
        """Queue a failed job again with all its attempts (audited)."""
        from aerodrome.audit import trail

        with self.engine.begin() as conn:
            job = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if job is None:
                raise NotFound(f"no job {job_id!r}", code="job_not_found")
            if job["status"] != "failed":
                raise Conflict(
                    f"job {job_id} is {job['status']}; only failed jobs can be retried", code="job_not_failed"
                )
            active = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.kind == job["kind"], jobs.c.target == job["target"], jobs.c.status.in_(ACTIVE)
                )
            ).first()
            if active is not None:
                raise Conflict(
                    f"a {job['kind']} job for {job['target']!r} is already queued or running ({active.id})",
                    code="job_running",
                )
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == "failed")
                .values(
                    status="queued",
                    attempts=0,
                    available_at=now(),
                    finished_at=None,
                    message=f"queued again by {actor}",
                )
            )
            trail.record(
                conn,
                actor=actor,
                action="job.retry",
                object_type="job",
                object_id=job_id,
                details={"kind": job["kind"], "target": job["target"], "error": job["error"]},
            )

    def take_schedule(self, name: str, interval_s: float) -> bool:
        """True for exactly one caller per interval and schedule, whichever process asks first."""
        at = now()
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(job_schedules)
                .where(job_schedules.c.name == name, job_schedules.c.next_run_at <= at)
                .values(next_run_at=at + timedelta(seconds=interval_s))
            ).rowcount
            if moved:
                return True
            exists = conn.execute(select(job_schedules.c.name).where(job_schedules.c.name == name)).first()
        if exists is not None:
            return False
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(job_schedules).values(name=name, next_run_at=at + timedelta(seconds=interval_s))
                )
        except IntegrityError:  # another worker created it first: its turn
            return False
        return True

    # ------------------------------------------------------------ workers

    def claim(self, worker: str, kinds: list[str], lease_s: float) -> Claimed | None:
        at = now()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(jobs.c.id)
                .where(
                    jobs.c.status == "queued",
                    jobs.c.kind.in_(kinds),
                    or_(jobs.c.available_at.is_(None), jobs.c.available_at <= at),
                )
                .order_by(jobs.c.available_at, jobs.c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            taken = conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.status == "queued")
                .values(
                    status="running",
                    attempts=jobs.c.attempts + 1,
                    worker=worker,
                    lease_expires_at=at + timedelta(seconds=lease_s),
                    started_at=at,
                    finished_at=None,
                    message="running",
                )
            ).rowcount
            if not taken:
                return None
            job = conn.execute(select(jobs).where(jobs.c.id == row.id)).mappings().one()
        return Claimed(
            id=job["id"],
            kind=job["kind"],
            target=job["target"],
            payload=dict(job["payload"] or {}),
            attempt=int(job["attempts"]),
            max_attempts=int(job["max_attempts"]),
            created_by=job["created_by"],
        )

    def _held(self, job_id: str, worker: str) -> Any:
        return and_(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == "running")

    def heartbeat(self, job_ids: list[str], worker: str, lease_s: float) -> None:
        if not job_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(job_ids), jobs.c.worker == worker, jobs.c.status == "running")
                .values(lease_expires_at=now() + timedelta(seconds=lease_s))
            )

    def progress(self, job_id: str, worker: str, done: int, total: int | None, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(self._held(job_id, worker))
                .values(done=done, total=total, message=message[:1000])
            )

    def succeed(self, job_id: str, worker: str, result: dict[str, Any]) -> None:
        done = int(result.get("documents", result.get("done", 0)) or 0)
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(self._held(job_id, worker))
                .values(
                    status="succeeded",
                    result=result,
                    done=done,
                    total=done,
                    message="finished",
                    lease_expires_at=None,
                    finished_at=now(),
                )
            )

    def fail(self, job: Claimed, worker: str, error: str, *, retry_in_s: float | None) -> None:
        """Record a failed attempt: queued again after ``retry_in_s``, or failed for good when None."""
        error = error[:4000]
        if retry_in_s is None:
            values: dict[str, Any] = {
                "status": "failed",
                "message": error[:1000],
                "finished_at": now(),
            }
        else:
            values = {
                "status": "queued",
                "available_at": now() + timedelta(seconds=retry_in_s),
                "message": f"attempt {job.attempt} of {job.max_attempts} failed; "
                f"retrying in {retry_in_s:g} s: {error}"[:1000],
            }
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(self._held(job.id, worker))
                .values(error=error, worker=None, lease_expires_at=None, **values)
            )

    def release(self, job_ids: list[str], worker: str, reason: str) -> None:
        """Give jobs back at once (the worker is stopping): another worker picks them up."""
        if not job_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(job_ids), jobs.c.worker == worker, jobs.c.status == "running")
                .values(
                    status="queued",
                    worker=None,
                    lease_expires_at=None,
                    available_at=now(),
                    attempts=jobs.c.attempts - 1,  # not the job's fault
                    message=reason,
                )
            )

    def reclaim_expired(self) -> int:
        """Jobs whose worker stopped renewing the lease: retried, or failed when out of attempts."""
        at = now()
        reason = "interrupted: its worker stopped (lease expired) before the job finished"
        expired = and_(jobs.c.status == "running", jobs.c.lease_expires_at < at)
        with self.engine.begin() as conn:
            failed = conn.execute(
                update(jobs)
                .where(expired, jobs.c.attempts >= jobs.c.max_attempts)
                .values(
                    status="failed",
                    error=reason,
                    message=reason,
                    worker=None,
                    lease_expires_at=None,
                    finished_at=at,
                )
            ).rowcount
            retried = conn.execute(
                update(jobs)
                .where(expired)
                .values(
                    status="queued",
                    error=reason,
                    message=f"{reason}; queued again",
                    worker=None,
                    lease_expires_at=None,
                    available_at=at,
                )
            ).rowcount
        return int(failed or 0) + int(retried or 0)

    def purge_finished(self, older_than: datetime, batch_size: int) -> int:
        removed = 0
        while True:
            with self.engine.begin() as conn:
                ids = select(jobs.c.id).where(
                    jobs.c.status.in_(("succeeded", "failed")), jobs.c.finished_at < older_than
                )
                n = conn.execute(delete(jobs).where(jobs.c.id.in_(ids.limit(batch_size)))).rowcount
            removed += int(n or 0)
            if not n or n < batch_size:
                return removed


# ------------------------------------------------------------------ reading


def counts(engine: Engine) -> tuple[dict[tuple[str, str], int], float]:
    """Jobs queued, running and failed by (kind, status), and the age in seconds of the oldest queued one."""
    from sqlalchemy import func

    at = now()
    with engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.kind, jobs.c.status, func.count())
            .where(jobs.c.status.in_(("queued", "running", "failed")))
            .group_by(jobs.c.kind, jobs.c.status)
        ).all()
        oldest = conn.execute(
            select(func.min(jobs.c.available_at)).where(jobs.c.status == "queued", jobs.c.available_at <= at)
        ).scalar()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = (at - oldest).total_seconds() if oldest is not None else 0.0
    return {(k, s): int(n) for k, s, n in rows}, max(0.0, age)


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": row["id"],
        "object": "job",
        "kind": row["kind"],
        "target": row["target"],
        "status": row["status"],
        "done": row["done"],
        "total": row["total"],
        "message": row["message"],
        "error": row["error"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "result": row["result"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "available_at": row["available_at"],
    }


def get_job(engine: Engine, job_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is None:
        raise NotFound(f"no job {job_id!r}", code="job_not_found")
    return public(dict(row))


def list_jobs(
    engine: Engine,
    *,
    kind: str | None = None,
    target: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    q = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
    if kind:
        q = q.where(jobs.c.kind == kind)
    if target:
        q = q.where(jobs.c.target == target)
    if status:
        q = q.where(jobs.c.status == status)
    with engine.connect() as conn:
        return [public(dict(r)) for r in conn.execute(q).mappings()]
