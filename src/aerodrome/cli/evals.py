"""``aerodrome eval``: run a use case's suite, compare two runs, turn corrections into cases.

``aerodrome eval USECASE`` runs in this process (the platform's runtime, without serving): the
same use-case runner, gateway admission and run records as the server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from aerodrome.cli.workspace import ConfigOption, fail, load, opened
from aerodrome.errors import AerodromeError

out = Console()


class RunByDefault(TyperGroup):
    """``aerodrome eval USECASE`` means ``aerodrome eval run USECASE``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=RunByDefault,
    help="Eval suites: `aerodrome eval USECASE` runs one; compare runs; add cases from corrections.",
    no_args_is_help=True,
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _summary(run: dict[str, Any], results: list[dict[str, Any]]) -> None:
    failed = [r for r in results if not r["passed"]]
    if failed:
        table = Table(title=f"{len(failed)} failed case(s)", show_lines=False)
        table.add_column("case")
        table.add_column("source")
        table.add_column("status")
        table.add_column("what failed")
        for r in failed:
            reasons = [f"{a['type']}: {a['detail']}" for a in r["assertions"] if not a["passed"]]
            if r.get("error") and not reasons:
                reasons = [r["error"]]
            table.add_row(r["case_id"], r["source"], r["status"] or "-", "\n".join(reasons)[:600])
        out.print(table)
    duration = run["duration_s"] or 0.0
    rate = run["cases"] / duration if duration else 0.0
    verdict = "[bold green]PASSED[/]" if run["status"] == "passed" else "[bold red]FAILED[/]"
    out.print(
        f"{verdict} {run['usecase_id']} v{run['spec_version']} on {run['deployment']} ({run['upstream_model']}): "
        f"{run['passed']}/{run['cases']} cases ({_pct(run['pass_rate'])}, threshold {run['threshold']:.0%})\n"
        f"  curated {_pct(run['curated_pass_rate'])} of {run['curated_cases']}, "
        f"live-like {_pct(run['live_pass_rate'])} of {run['live_cases']}\n"
        f"  cost ${run['cost_usd']:.4f}; latency p50 {run['latency_ms_p50'] or 0:.0f} ms, "
        f"p95 {run['latency_ms_p95'] or 0:.0f} ms; {duration:.1f} s ({rate:.1f} cases/s)\n"
        f"  eval run {run['id']}",
        highlight=False,
    )


def _warm_embeddings(rt: Any) -> None:
    """Load the local embedding model before the first case, so its latency is not the load's."""
    try:
        rt.knowledge.local_embedding().embed(["warm up"])
    except AerodromeError as exc:  # not installed: retrieval will say so in the cases that need it
        out.print(f"[yellow]local embeddings not warmed:[/] {exc.message}", highlight=False)


async def _evaluate(
    cfg: Any, engine: Any, usecase_id: str, deployment: str | None, spec_version: int | None, actor: str
) -> dict[str, Any]:
    from aerodrome.evals import store
    from aerodrome.runtime import Runtime

    rt = await Runtime.start(cfg, engine, run_jobs=False)
    try:
        plan = await asyncio.to_thread(
            rt.evals.plan, usecase_id, deployment=deployment, spec_version=spec_version
        )
        await asyncio.to_thread(rt.usecases.warm)  # guardrail engines built now, not in the first cases
        if plan.live.spec.retrieval is not None:
            await asyncio.to_thread(_warm_embeddings, rt)
        await asyncio.to_thread(rt.evals.start, plan, actor=actor)
        with Progress(
            SpinnerColumn(),
            TextColumn(f"[bold]{usecase_id}[/] on {plan.deployment}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=out,
            transient=True,
        ) as bar:
            task = bar.add_task("eval", total=len(plan.suite.cases), note="")

            def progress(done: int, total: int, result: store.CaseResult) -> None:
                mark = "ok" if result.passed else "FAILED"
                bar.update(task, completed=done, note=f"{result.case_id} {mark}")

            run = await rt.evals.execute(plan, actor=actor, progress=progress)
        return await asyncio.to_thread(store.get, engine, run["id"])
    finally:
        await rt.stop()


@app.command("run")
def run(
    usecase_id: str = typer.Argument(..., metavar="USECASE"),
    deployment: str | None = typer.Option(
        None, "--deployment", "-d", help="deployment to pin; default: its alias's first"
    ),
    spec_version: int | None = typer.Option(
        None, "--spec-version", "-v", help="default: the current version"
    ),
    actor: str = typer.Option("cli", "--as", help="who is recorded as running it"),
    as_json: bool = typer.Option(False, "--json", help="print the stored run as JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """Run a use case's eval suite on a deployment; exit 1 when it fails its threshold, 2 on an error."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        try:
            result = asyncio.run(_evaluate(cfg, engine, usecase_id, deployment, spec_version, actor))
        except AerodromeError as exc:
            for problem in getattr(exc, "problems", []):
                out.print(f"  {problem}", highlight=False, soft_wrap=True)
            fail(exc.message, code=2)
            raise AssertionError from None
    if as_json:
        print(json.dumps(result, default=str, indent=2))
    else:
        _summary(result, result["results"])
    if result["status"] != "passed":
        raise typer.Exit(1)


@app.command("compare")
def compare(
    base: str = typer.Argument(..., metavar="BASE_RUN", help="the eval run compared against"),
    candidate: str = typer.Argument(..., metavar="CANDIDATE_RUN"),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """Compare two eval runs: pass rates, the paired difference with its 95% interval, regressions."""
    from aerodrome.evals import comparison, store

    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        try:
            result = comparison.compare(store.get(engine, base), store.get(engine, candidate))
        except AerodromeError as exc:
            fail(exc.message)
            raise AssertionError from None
    if as_json:
        print(json.dumps(result, default=str, indent=2))
        return
    diff = result["difference"]
    b, c = result["base"], result["candidate"]
    out.print(
        f"base      {b['id']} {b['deployment']}: {_pct(result['base_pass_rate'])}\n"
        f"candidate {c['id']} {c['deployment']}: {_pct(result['candidate_pass_rate'])}\n"
        f"difference {_pct(diff['estimate'])} (95% interval {_pct(diff['low'])} to {_pct(diff['high'])}) "
        f"over {result['paired_cases']} paired cases",
        highlight=False,
    )
    if not result["same_suite"]:
        out.print("[yellow]the two runs used different suite contents[/]")
    for r in result["regressed"]:
        reasons = "; ".join(f"{a['type']}: {a['detail']}" for a in r["failed"])
        out.print(f"  [red]regressed[/] {r['case_id']} ({r['source']}): {reasons}", highlight=False)
    for case_id in result["fixed"]:
        out.print(f"  [green]fixed[/] {case_id}", highlight=False)


@app.command("cases-from-feedback")
def cases_from_feedback(
    usecase_id: str = typer.Argument(..., metavar="USECASE"),
    min_similarity: float = typer.Option(0.75, "--min-similarity", help="for text answers: least similarity"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the cases instead of adding them"),
    config: Path | None = ConfigOption,
) -> None:
    """Add live cases to USECASE.jsonl from corrected runs (feedback corrections and review edits)."""
    from aerodrome.evals import corrections
    from aerodrome.evals.suite import suites_folder
    from aerodrome.usecases.store import current_spec

    settings, cfg, _ = load(config)
    folder = suites_folder(cfg)
    if folder is None:
        fail("no eval suites folder: set usecases.dir or evals.dir")
    assert folder is not None
    target = folder / f"{usecase_id}.jsonl"
    with opened(settings, cfg) as engine:
        with engine.connect() as conn:
            spec = current_spec(conn, usecase_id)
        if spec is None:
            fail(f"no use case {usecase_id!r} in the database (serve or validate its spec first)")
        assert spec is not None
        runs, ids = corrections.known_origins(target)
        found = corrections.harvest(
            engine, spec, known_runs=runs, known_ids=ids, min_similarity=min_similarity
        )
    for reason in found.skipped:
        out.print(f"  [yellow]skipped[/] {reason}", highlight=False)
    if dry_run:
        for case in found.cases:
            print(json.dumps(case))
        return
    if found.cases:
        corrections.append(target, found.cases)
    out.print(f"added {len(found.cases)} live case(s) to {target}", highlight=False)


@app.command("validate")
def validate(
    usecase_ids: list[str] = typer.Argument(
        None, metavar="[USECASE]...", help="default: every suite in the folder"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Check eval suites without running them (every problem as FILE:LINE: FIELD: MESSAGE); exit 1 on any."""
    from aerodrome.cli.usecases import _registry
    from aerodrome.evals.suite import load_suite, suites_folder

    settings, cfg, _ = load(config)
    folder = suites_folder(cfg)
    if folder is None:
        fail("no eval suites folder: set usecases.dir or evals.dir")
    assert folder is not None
    names = list(usecase_ids or [])
    if not names and folder.is_dir():
        names = sorted({p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".jsonl")})
    bad = 0
    with opened(settings, cfg) as engine:
        registry = _registry(engine, cfg)
        for name in names:
            try:
                spec = registry.get(name).spec
                suite = load_suite(folder, name, spec, max_inputs_bytes=cfg.usecases.max_inputs_bytes)
            except AerodromeError as exc:
                bad += 1
                problems = getattr(exc, "problems", None)
                for problem in problems or [f"{name}: {exc.message}"]:
                    out.print(f"{problem}", highlight=False, soft_wrap=True)
                continue
            out.print(f"ok {name}: {len(suite.cases)} cases", highlight=False)
    if not names:
        out.print(f"no suites in {folder}", highlight=False)
    if bad:
        raise typer.Exit(1)


@app.command("runs")
def runs(
    usecase_id: str | None = typer.Argument(None, metavar="[USECASE]"),
    limit: int = typer.Option(20, "--limit", "-n"),
    config: Path | None = ConfigOption,
) -> None:
    """List eval runs, newest first."""
    from aerodrome.evals import store

    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        found = store.list_runs(engine, usecase_id=usecase_id, limit=limit)
    for r in found:
        out.print(
            f"{r['id']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['usecase_id']} v{r['spec_version']}  "
            f"{r['deployment']}  {r['status']}  {_pct(r['pass_rate'])} of {r['cases']}",
            highlight=False,
            soft_wrap=True,
        )
    if not found:
        out.print("no eval runs")
