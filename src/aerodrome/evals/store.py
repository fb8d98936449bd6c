"""Eval runs and their per-case results, stored and read back; the end of each run is audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from aerodrome.audit import trail
from aerodrome.errors import NotFound
from aerodrome.evidence import stats
from aerodrome.gateway.run_context import new_run_id
from aerodrome.storage.tables import eval_results, eval_runs, jobs

FINISHED = ("passed", "failed")


class EvalRunNotFound(NotFound):
    code = "eval_run_not_found"


@dataclass(slots=True)
class CaseResult:
    case_id: str
    seq: int
    source: str
    passed: bool
    assertions: list[dict[str, Any]] = field(default_factory=list)  # [{type, passed, score, detail}]
    run_id: str | None = None
    status: str | None = None
    error: str | None = None
    output: Any = None
    cost_usd: float = 0.0
    latency_ms: float = 0.0

    def to_row(self, eval_run_id: str) -> dict[str, Any]:
        return {
            "eval_run_id": eval_run_id,
            "case_id": self.case_id,
            "seq": self.seq,
            "source": self.source,
            "passed": self.passed,
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error[:2000] if self.error else None,
            "output": self.output,
            "assertions": self.assertions,
            "cost_usd": self.cost_usd,
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass(frozen=True, slots=True)
class RunKey:
    """What an eval run measured: a use case's spec version and suite content on one deployment."""

    usecase_id: str
    spec_version: int
    suite_hash: str
    alias: str
    deployment: str
    upstream_model: str
    threshold: float


def create(engine: Engine, key: RunKey, *, actor: str) -> str:
    run_id = new_run_id()
    with engine.begin() as conn:
        conn.execute(
            eval_runs.insert().values(
                id=run_id,
                usecase_id=key.usecase_id,
                spec_version=key.spec_version,
                suite_hash=key.suite_hash,
                alias=key.alias,
                deployment=key.deployment,
                upstream_model=key.upstream_model,
                status="running",
                threshold=key.threshold,
                cases=0,
                passed=0,
                errored=0,
                curated_cases=0,
                curated_passed=0,
                live_cases=0,
                live_passed=0,
                cost_usd=0.0,
                message="",
                created_by=actor,
                created_at=datetime.now(UTC),
            )
        )
    return run_id


def finish(
    engine: Engine, run_id: str, results: Sequence[CaseResult], *, duration_s: float
) -> dict[str, Any]:
    """Store the per-case results and the totals; passed when the pass rate reaches the threshold."""
    with engine.begin() as conn:
        row = conn.execute(select(eval_runs).where(eval_runs.c.id == run_id)).mappings().first()
        if row is None:
            raise EvalRunNotFound(f"no eval run {run_id!r}")
        n = len(results)
        passed = sum(r.passed for r in results)
        latencies = [r.latency_ms for r in results]
        rate = passed / n if n else 0.0
        values = {
            "cases": n,
            "passed": passed,
            "errored": sum(r.status == "error" for r in results),
            "curated_cases": sum(r.source == "curated" for r in results),
            "curated_passed": sum(r.source == "curated" and r.passed for r in results),
            "live_cases": sum(r.source == "live" for r in results),
            "live_passed": sum(r.source == "live" and r.passed for r in results),
            "cost_usd": sum(r.cost_usd for r in results),
            "latency_ms_p50": stats.percentile(latencies, 50),
            "latency_ms_p95": stats.percentile(latencies, 95),
            "duration_s": round(duration_s, 3),
            "status": "passed" if n and rate >= row["threshold"] - 1e-12 else "failed",
            "finished_at": datetime.now(UTC),
        }
        if results:
            conn.execute(eval_results.insert(), [r.to_row(run_id) for r in results])
        conn.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(**values))
        trail.record(
            conn,
            actor=row["created_by"],
            action="eval.run",
            object_type="usecase",
            object_id=row["usecase_id"],
            details={
                "eval_run_id": run_id,
                "spec_version": row["spec_version"],
                "deployment": row["deployment"],
                "suite_hash": row["suite_hash"],
                "status": values["status"],
                "cases": n,
                "passed": passed,
            },
        )
    return get(engine, run_id, results=False)


def set_job(engine: Engine, run_id: str, job_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(job_id=job_id))


def fail(engine: Engine, run_id: str, message: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(eval_runs)
            .where(eval_runs.c.id == run_id)
            .values(status="error", message=message[:2000], finished_at=datetime.now(UTC))
        )


def running_job(engine: Engine, usecase_id: str) -> str | None:
    """The job of an API-started eval run of the use case still queued or running, if any."""
    with engine.connect() as conn:
        found = conn.execute(
            select(eval_runs.c.job_id).where(
                eval_runs.c.usecase_id == usecase_id,
                eval_runs.c.status == "running",
                eval_runs.c.job_id.is_not(None),
            )
        ).first()
    return None if found is None else str(found.job_id)


def fail_orphaned(engine: Engine) -> int:
    """Eval runs still marked running whose job has ended (its worker died, or it failed before the
    run started) end as errors, with the job's last error."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(eval_runs.c.id, jobs.c.error, jobs.c.message)
            .join(jobs, jobs.c.id == eval_runs.c.job_id)
            .where(eval_runs.c.status == "running", jobs.c.status.in_(("failed", "succeeded")))
        ).all()
        for run_id, error, message in rows:
            conn.execute(
                update(eval_runs)
                .where(eval_runs.c.id == run_id, eval_runs.c.status == "running")
                .values(
                    status="error",
                    message=f"the run's job ended without finishing it: {error or message or 'no error recorded'}"[
                        :2000
                    ],
                    finished_at=datetime.now(UTC),
                )
            )
    return len(rows)


def _public(row: Any) -> dict[str, Any]:
    out = dict(row)
    n = out["cases"]
    out["object"] = "eval.run"
    out["pass_rate"] = out["passed"] / n if n else None
    out["curated_pass_rate"] = out["curated_passed"] / out["curated_cases"] if out["curated_cases"] else None
    out["live_pass_rate"] = out["live_passed"] / out["live_cases"] if out["live_cases"] else None
    return out


def get(engine: Engine, run_id: str, *, results: bool = True) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(eval_runs).where(eval_runs.c.id == run_id)).mappings().first()
        if row is None:
            raise EvalRunNotFound(f"no eval run {run_id!r}")
        out = _public(row)
        if out["status"] == "running" and out["job_id"]:
            job = conn.execute(
                select(jobs.c.done, jobs.c.total, jobs.c.message).where(jobs.c.id == out["job_id"])
            ).first()
            if job is not None:
                out["progress"] = {"done": job.done, "total": job.total, "message": job.message}
        if results:
            rows = conn.execute(
                select(eval_results).where(eval_results.c.eval_run_id == run_id).order_by(eval_results.c.seq)
            ).mappings()
            out["results"] = [{k: v for k, v in r.items() if k != "eval_run_id"} for r in rows]
    return out


def results_of(engine: Engine, run_id: str) -> dict[str, dict[str, Any]]:
    """case id → result row, for comparisons."""
    return {r["case_id"]: r for r in get(engine, run_id)["results"]}


def list_runs(
    engine: Engine,
    *,
    usecase_ids: Sequence[str] | None = None,
    usecase_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = select(eval_runs).order_by(eval_runs.c.created_at.desc(), eval_runs.c.id.desc()).limit(limit)
    if usecase_id is not None:
        query = query.where(eval_runs.c.usecase_id == usecase_id)
    if usecase_ids is not None:
        query = query.where(eval_runs.c.usecase_id.in_(list(usecase_ids)))
    with engine.connect() as conn:
        return [_public(r) for r in conn.execute(query).mappings()]


def latest(
    engine: Engine,
    usecase_id: str,
    *,
    spec_version: int | None = None,
    suite_hash: str | None = None,
    deployment: str | None = None,
    before: datetime | None = None,
) -> dict[str, Any] | None:
    """The newest finished eval run matching every given field, None when there is none."""
    query = (
        select(eval_runs)
        .where(eval_runs.c.usecase_id == usecase_id, eval_runs.c.status.in_(FINISHED))
        .order_by(eval_runs.c.created_at.desc(), eval_runs.c.id.desc())
        .limit(1)
    )
    if spec_version is not None:
        query = query.where(eval_runs.c.spec_version == spec_version)
    if suite_hash is not None:
        query = query.where(eval_runs.c.suite_hash == suite_hash)
    if deployment is not None:
        query = query.where(eval_runs.c.deployment == deployment)
    if before is not None:
        query = query.where(eval_runs.c.created_at < before)
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return _public(row) if row is not None else None
