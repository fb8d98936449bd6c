"""Evaluations and red-team runs as job kinds (``eval``, ``redteam``) of the job queue.

A request checks everything first (the plan: use case, version, deployment, suite, options),
records what it accepted and enqueues a job whose payload names it; whichever worker claims the
job (the server's own, or an ``aerodrome worker`` process, which starts the platform for it)
plans again from the payload and runs every case through the use case's path on the platform's
event loop, reporting progress from the job's thread.

Neither kind is retried (``max_attempts=1``): a run calls models and costs money, so a failed or
interrupted run ends as failed and is started again by a person (``POST /api/jobs/{id}/retry``
or a new run). An eval run whose job ended without finishing it is marked ``error`` by
:func:`aerodrome.evals.store.fail_orphaned`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from aerodrome.errors import AerodromeError, Conflict
from aerodrome.evals import store
from aerodrome.evals.plan import Plan
from aerodrome.evals.redteam import Attempt, RedTeamOptions
from aerodrome.jobs.context import Job, JobContext, Platform
from aerodrome.jobs.registry import JobKind

if TYPE_CHECKING:
    from aerodrome.runtime import Runtime

EVAL_KIND = "eval"
REDTEAM_KIND = "redteam"
POLL_S = 0.2
T = TypeVar("T")


def _run_reporting(platform: Platform, coro: Coroutine[Any, Any, T], report: Callable[[], None]) -> T:
    """Run ``coro`` on the platform's loop; from this job thread, report progress until it ends."""
    import asyncio
    import concurrent.futures

    future = asyncio.run_coroutine_threadsafe(coro, platform.loop)
    while not future.done():
        report()
        concurrent.futures.wait([future], timeout=POLL_S)
    return future.result()


# ------------------------------------------------------------------ evaluations


def enqueue_eval(rt: Runtime, plan: Plan, *, actor: str) -> tuple[str, str]:
    """Record the run as running and queue it (409 ``job_running`` while one runs for the use case).

    One at a time is decided on the eval runs, not the job (which ends a moment after its run is
    stored), so a new run may start as soon as the last one shows its result.

    Returns (eval run id, job id)."""
    running = store.running_job(rt.engine, plan.usecase_id)
    if running is not None:
        raise Conflict(
            f"an evaluation of {plan.usecase_id!r} is already queued or running (job {running})",
            code="job_running",
        )
    run_id = rt.evals.start(plan, actor=actor)
    payload = {"eval_run_id": run_id, "deployment": plan.deployment, "spec_version": plan.spec_version}
    try:
        job_id = rt.jobs.enqueue(EVAL_KIND, plan.usecase_id, created_by=actor, payload=payload)
    except AerodromeError as exc:
        store.fail(rt.engine, run_id, exc.message)
        raise
    store.set_job(rt.engine, run_id, job_id)
    return run_id, job_id


def _eval(ctx: JobContext, job: Job) -> dict[str, Any]:
    platform = ctx.running_platform()
    evals = platform.runtime.evals
    run_id = str(job.payload["eval_run_id"])
    accepted = store.get(ctx.engine, run_id, results=False)
    if accepted["status"] != "running":
        raise Conflict(
            f"the eval run {run_id} is {accepted['status']}, not waiting to run", code="eval_run_ended"
        )
    try:
        plan = evals.plan(
            job.target, deployment=job.payload.get("deployment"), spec_version=job.payload.get("spec_version")
        )
        stored = store.RunKey(**{f: accepted[f] for f in store.RunKey.__dataclass_fields__})
        if plan.key() != stored:
            raise Conflict(
                "the suite, the spec version or the deployment's model changed between the request and "
                "the run; start the run again",
                code="eval_plan_changed",
            )
    except AerodromeError as exc:
        store.fail(ctx.engine, run_id, exc.message)
        raise
    plan.eval_run_id = run_id
    counts = [0, 0, 0]  # done, total, passed

    def progress(done: int, total: int, result: store.CaseResult) -> None:
        counts[0], counts[1] = done, total
        counts[2] += result.passed

    def report() -> None:
        if counts[1]:
            job.progress(counts[0], counts[1], f"{counts[0]} of {counts[1]} cases, {counts[2]} passed")

    run = _run_reporting(platform, evals.execute(plan, actor=job.created_by, progress=progress), report)
    return {"done": run["cases"], "eval_run_id": run["id"], "status": run["status"]}


# ------------------------------------------------------------------ red team


def options_payload(options: RedTeamOptions) -> dict[str, Any]:
    return {
        "families": list(options.families),
        "limit": options.limit,
        "seed": options.seed,
        "department": options.department,
        "tolerance": options.tolerance,
        "concurrency": options.concurrency,
        "data_dir": str(options.data_dir) if options.data_dir is not None else None,
    }


def options_from(payload: dict[str, Any]) -> RedTeamOptions:
    from pathlib import Path

    data_dir = payload.get("data_dir")
    return RedTeamOptions(
        families=list(payload["families"]),
        limit=payload.get("limit"),
        seed=int(payload["seed"]),
        department=payload.get("department"),
        tolerance=float(payload.get("tolerance", 0.0)),
        concurrency=int(payload["concurrency"]),
        data_dir=Path(data_dir) if data_dir else None,
    )


def enqueue_redteam(rt: Runtime, usecase_id: str, options: RedTeamOptions, actor: str) -> str:
    """Check and plan the run (errors before anything is queued), queue it, audit its start."""
    from aerodrome.evals.redteam_runs import audit_started, prepare

    team, attacks = prepare(rt, usecase_id, options, actor)
    payload = {"options": options_payload(options), "redteam_run": team.id}
    job_id = rt.jobs.enqueue(REDTEAM_KIND, usecase_id, created_by=actor, payload=payload)
    audit_started(rt.engine, team, attacks, actor, job_id=job_id)
    return job_id


def _redteam(ctx: JobContext, job: Job) -> dict[str, Any]:
    from aerodrome.evals.redteam_runs import execute, prepare

    platform = ctx.running_platform()
    rt = platform.runtime
    options = options_from(job.payload["options"])
    team, attacks = prepare(rt, job.target, options, job.created_by, run_id=job.payload.get("redteam_run"))
    done = [0, 0]  # attempts finished, of which got through

    def count(attempt: Attempt) -> None:
        done[0] += 1
        done[1] += attempt.verdict.outcome == "got_through"

    def report() -> None:
        job.progress(done[0], len(attacks), f"{done[0]} of {len(attacks)} attacks, {done[1]} got through")

    result = _run_reporting(platform, execute(rt, team, attacks, job.created_by, count), report)
    return {**result, "done": result["totals"]["attempted"]}


EVAL = JobKind(name=EVAL_KIND, run=_eval, max_attempts=1, exclusive=False)  # see enqueue_eval
REDTEAM = JobKind(name=REDTEAM_KIND, run=_redteam, max_attempts=1)
