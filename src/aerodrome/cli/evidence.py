"""``aerodrome report`` and ``aerodrome usecases advance``: the evidence engine from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from aerodrome.cli.workspace import ConfigOption, fail, load, opened
from aerodrome.errors import AerodromeError

out = Console()


def report(
    usecase_id: str = typer.Argument(..., metavar="ID"),
    fmt: str = typer.Option("md", "--format", "-f", help="html, md or json"),
    output: Path | None = typer.Option(None, "--out", "-o", help="write to this file instead of printing"),
    config: Path | None = ConfigOption,
) -> None:
    """The pilot report of a use case: verdicts of the locked criteria, red flags, recommendation."""
    from aerodrome.evidence import report as pilot_report

    if fmt not in pilot_report.FORMATS:
        fail(f"--format must be one of {', '.join(pilot_report.FORMATS)}")
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        try:
            text = pilot_report.render(pilot_report.build(engine, usecase_id), fmt)
        except AerodromeError as exc:
            fail(exc.message)
            raise AssertionError from None
    if output is None:
        print(text)
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote {output}", highlight=False)


def advance(
    usecase_id: str = typer.Argument(..., metavar="ID"),
    to: str | None = typer.Option(None, "--to", help="the stage; default: the next one"),
    decision: str | None = typer.Option(None, "--decision", help="go, redesign or stop (from decision)"),
    rationale: str = typer.Option("", "--rationale", help="why; required for decisions"),
    actor: str = typer.Option("cli", "--as", help="who is recorded in the audit trail"),
    dry_run: bool = typer.Option(False, "--dry-run", help="only show the gate's checks"),
    config: Path | None = ConfigOption,
) -> None:
    """Move a use case to its next stage through the gate; a refusal lists what is missing (exit 1)."""
    from aerodrome.catalog.store import build_catalog
    from aerodrome.evidence import transitions
    from aerodrome.evidence.readiness import gate_evidence
    from aerodrome.evidence.stages import NEXT
    from aerodrome.usecases import store

    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        try:
            row = store.get(engine, usecase_id)
            target = to or (NEXT.get(row["stage"]) if row["stage"] != "decision" else None)
            if target is None:
                fail(f"{usecase_id} is at {row['stage']}: give --to and --decision")
            assert target is not None
            deciding = decision or target == "retired" or row["stage"] == "decision"
            if deciding and not dry_run and len(rationale.strip()) < 10:
                fail("a decision needs --rationale (at least 10 characters)")
            catalog = build_catalog(cfg, engine)
            result = transitions.advance(
                engine,
                usecase_id,
                target,
                actor=actor,
                rationale=rationale.strip(),
                decision=decision,
                evidence=gate_evidence(engine, cfg, lambda: catalog),
                dry_run=dry_run,
            )
        except transitions.GateRefused as exc:
            for check in exc.checks:
                mark = "ok " if check.ok else "MISSING"
                out.print(
                    f"  {mark} {check.requirement}{': ' + check.detail if check.detail else ''}",
                    highlight=False,
                )
            fail(f"{usecase_id} cannot move to {exc.param and target}")
            raise AssertionError from None
        except AerodromeError as exc:
            fail(exc.message)
            raise AssertionError from None
    for check in result["checks"]:
        mark = "ok " if check["ok"] else "MISSING"
        out.print(f"  {mark} {check['requirement']}", highlight=False)
    verb = "would move" if dry_run else "moved"
    out.print(f"{usecase_id} {verb} from {result['from']} to {result['to']}", highlight=False)
