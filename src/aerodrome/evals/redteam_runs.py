"""Red-team runs on the running platform: plan, audit, run, report; in process (CLI) or as a job (API).

A run is audited twice: ``redteam.started`` (who, which use case and version, which sets) and
``redteam.finished`` (the totals and whether it passed). As a job (``kind = "redteam"``,
``target = <use case id>``) its report is the job's result, read at
``GET /api/usecases/{id}/redteam/{job_id}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from aerodrome.audit import trail
from aerodrome.evals import redteam_report
from aerodrome.evals.attacks import Attack
from aerodrome.evals.redteam import (
    Attempt,
    RedTeam,
    RedTeamOptions,
    check_options,
    plan_attacks,
    redteam_principal,
    run_attacks,
)

if TYPE_CHECKING:
    from aerodrome.runtime import Runtime

JOB_KIND = "redteam"
POLL_S = 0.2


def prepare(
    rt: Runtime, usecase_id: str, options: RedTeamOptions, actor: str
) -> tuple[RedTeam, list[Attack]]:
    """The run and its attacks; errors (unknown use case, bad options, missing data) before anything runs."""
    check_options(options)
    live = rt.usecases.get(usecase_id)
    principal = redteam_principal(live.spec, options.department, actor)
    attacks = plan_attacks(options)
    team = RedTeam(
        runner=rt.usecase_runner, gateway=rt.gateway, live=live, principal=principal, options=options
    )
    return team, attacks


def audit_started(
    engine: Engine, team: RedTeam, attacks: list[Attack], actor: str, *, job_id: str | None = None
) -> None:
    with engine.begin() as conn:
        trail.record(
            conn,
            actor=actor,
            action="redteam.started",
            object_type="usecase",
            object_id=team.original.id,
            details={
                "redteam_run": team.id,
                "job_id": job_id,
                "spec_version": team.original.version,
                "model": team.original.spec.model,
                "department": team.principal.department_id,
                "attacks": len(attacks),
                **team.options.to_dict(),
            },
        )


def audit_finished(engine: Engine, report: dict[str, Any], actor: str) -> None:
    t = report["totals"]
    with engine.begin() as conn:
        trail.record(
            conn,
            actor=actor,
            action="redteam.finished",
            object_type="usecase",
            object_id=report["usecase_id"],
            details={
                "redteam_run": report["id"],
                "spec_version": report["spec_version"],
                "attempted": t["attempted"],
                "blocked": t["blocked"],
                "got_through": t["got_through"],
                "errors": t["error"],
                "passed": report["passed"],
            },
        )


async def execute(
    rt: Runtime,
    team: RedTeam,
    attacks: list[Attack],
    actor: str,
    on_done: Callable[[Attempt], None] | None = None,
) -> dict[str, Any]:
    """Run every attack in this event loop, then write the finish event; returns the report."""
    started = time.perf_counter()
    attempts = await run_attacks(team, attacks, on_done)
    report = redteam_report.build(team, attempts, time.perf_counter() - started)
    await asyncio.to_thread(audit_finished, rt.engine, report, actor)
    return report


def submit_job(
    rt: Runtime, loop: asyncio.AbstractEventLoop, usecase_id: str, options: RedTeamOptions, actor: str
) -> str:
    """Start a red-team run as a job (409 while one runs for the use case); returns the job id.

    The attacks run on the server's event loop (where the providers' connections live); the job's
    worker thread waits for them and reports progress."""
    team, attacks = prepare(rt, usecase_id, options, actor)

    def work(progress: Callable[[int, int | None, str], None]) -> dict[str, Any]:
        done = [0, 0]  # attempts finished, of which got through

        def count(attempt: Attempt) -> None:
            done[0] += 1
            done[1] += attempt.verdict.outcome == "got_through"

        future = asyncio.run_coroutine_threadsafe(execute(rt, team, attacks, actor, count), loop)
        while not future.done():
            progress(done[0], len(attacks), f"{done[0]} of {len(attacks)} attacks, {done[1]} got through")
            time.sleep(POLL_S)
        report = future.result()
        return {**report, "done": report["totals"]["attempted"]}

    job_id = rt.jobs.submit(JOB_KIND, usecase_id, work, created_by=actor)
    audit_started(rt.engine, team, attacks, actor, job_id=job_id)
    return job_id
