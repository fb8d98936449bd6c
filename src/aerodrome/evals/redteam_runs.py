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


def prepare(
    rt: Runtime, usecase_id: str, options: RedTeamOptions, actor: str, *, run_id: str | None = None
) -> tuple[RedTeam, list[Attack]]:
    """The run and its attacks; errors (unknown use case, bad options, missing data) before anything runs."""
    check_options(options)
    live = rt.usecases.get(usecase_id)
    principal = redteam_principal(live.spec, options.department, actor)
    attacks = plan_attacks(options)
    team = RedTeam(
        runner=rt.usecase_runner,
        gateway=rt.gateway,
        live=live,
        principal=principal,
        options=options,
        run_id=run_id,
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
