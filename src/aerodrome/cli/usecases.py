"""``aerodrome usecases``: validate spec files, list the use cases served, show one."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from aerodrome.catalog.store import build_catalog
from aerodrome.cli.workspace import ConfigOption, fail, load, opened
from aerodrome.config import PlatformConfig, dump_yaml
from aerodrome.errors import AerodromeError
from aerodrome.identity.store import apply_config, load_departments
from aerodrome.knowledge.collections import apply_config as apply_collections
from aerodrome.usecases import store
from aerodrome.usecases.loader import FileCheck, check_file, spec_files
from aerodrome.usecases.refs import platform_refs
from aerodrome.usecases.registry import UseCaseRegistry
from aerodrome.usecases.validation import PlatformRefs, SpecProblem

app = typer.Typer(help="Use cases as configuration: spec files, versions.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _folder(cfg: PlatformConfig) -> Path | None:
    folder = cfg.usecases.dir
    if folder is not None and not folder.is_absolute():
        folder = cfg.base_dir / folder
    return folder


def _refs(engine: Engine, cfg: PlatformConfig) -> PlatformRefs:
    apply_config(engine, cfg)
    apply_collections(engine, cfg)
    hooks = [w.name for w in cfg.alerts.webhooks]
    return platform_refs(build_catalog(cfg, engine), load_departments(engine), engine, webhooks=hooks)


def _registry(engine: Engine, cfg: PlatformConfig) -> UseCaseRegistry:
    """The folder synchronised into the database, as the server does at start."""
    registry = UseCaseRegistry(
        engine,
        folder=_folder(cfg),
        refs=lambda: _refs(engine, cfg),
        pii_recognizers=cfg.guardrails.pii_recognizers,
    )
    if registry.sync_folder(force=True, actor="cli") is None:
        registry.reload(force=True)
    return registry


@app.command("validate")
def validate(
    paths: list[Path] = typer.Argument(
        None, help="spec files or folders; default: the config's usecases.dir"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Check spec files without serving them; every problem as FILE:LINE: FIELD: MESSAGE. Exit 1 on any."""
    settings, cfg, _ = load(config)
    targets = list(paths or [])
    if not targets:
        folder = _folder(cfg)
        if folder is None:
            fail("no files given and the config sets no usecases.dir")
        assert folder is not None
        targets = [folder]
    files: list[Path] = []
    for target in targets:
        if target.is_dir():
            files += spec_files(target)
        elif target.is_file():
            files.append(target)
        else:
            fail(f"{target}: no such file or folder")
    if not files:
        fail(f"no *.yaml or *.yml spec files in {', '.join(map(str, targets))}")
    with opened(settings, cfg) as engine:
        refs = _refs(engine, cfg)
    checked: list[FileCheck] = [check_file(f, refs) for f in files]
    seen: dict[str, Path] = {}
    problems: list[SpecProblem] = []
    for c in checked:
        problems += c.check.problems
        ident = c.check.spec.id if c.check.spec is not None else c.declared_id
        if ident is not None and ident in seen:
            problems.append(SpecProblem("id", f"{ident!r} is also defined in {seen[ident]}", str(c.path), 1))
        elif ident is not None:
            seen[ident] = c.path
    for problem in problems:
        err.print(str(problem), highlight=False, soft_wrap=True)
    valid = sum(1 for c in checked if c.check.ok)
    if problems:
        fail(f"{len(problems)} problem(s); {valid} of {len(checked)} spec file(s) valid")
    out.print(f"{valid} spec file(s) valid", highlight=False)


@app.command("list")
def list_usecases(config: Path | None = ConfigOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """The use cases served, with their current version (the folder is synchronised first)."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        registry = _registry(engine, cfg)
        rows = registry.all()
        problems = registry.folder_problems
    if as_json:
        data = [
            {
                "id": u.id,
                "title": u.spec.title,
                "version": u.version,
                "origin": u.origin,
                "source": u.source,
                "departments": u.spec.departments,
                "model": u.spec.model,
                "risk_tier": u.spec.risk_tier,
                "load_error": u.load_error,
            }
            for u in rows
        ]
        out.print_json(json.dumps({"usecases": data, "problems": [p.to_dict() for p in problems]}))
        return
    table = Table("id", "version", "title", "departments", "model", "risk", "origin", "state")
    for u in rows:
        state = "[red]newest file invalid[/red]" if u.load_error else "ok"
        table.add_row(
            u.id,
            str(u.version),
            u.spec.title,
            ",".join(u.spec.departments),
            u.spec.model,
            u.spec.risk_tier,
            u.origin,
            state,
        )
    out.print(table)
    for problem in problems:
        err.print(str(problem), highlight=False, soft_wrap=True)


@app.command("show")
def show(
    usecase_id: str = typer.Argument(..., metavar="ID"),
    version: int | None = typer.Option(None, "--version", help="a past version; default: the current one"),
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One use case's spec (current or a given version) and its version history."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        registry = _registry(engine, cfg)
        try:
            live = registry.get(usecase_id)
            number = version if version is not None else live.version
            stored = store.version(engine, usecase_id, number)
            history = store.versions(engine, usecase_id)
        except AerodromeError as exc:
            fail(exc.message)
            raise AssertionError from None
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "id": usecase_id,
                    "version": number,
                    "spec": stored["spec"],
                    "versions": [{**h, "created_at": h["created_at"].isoformat()} for h in history],
                }
            )
        )
        return
    out.print(
        f"# {usecase_id} version {number} of {len(history)} ({live.origin}: {live.source or 'API'})",
        highlight=False,
    )
    if live.load_error:
        err.print("the newest file is invalid; this version keeps serving:", highlight=False)
        for problem in live.load_error:
            err.print(
                f"  {problem['source']}:{problem['line']}: {problem['field']}: {problem['message']}",
                highlight=False,
            )
    out.print(dump_yaml(stored["spec"]), highlight=False, markup=False)
    for h in history:
        out.print(
            f"  v{h['version']}  {h['created_at']:%Y-%m-%d %H:%M}  {h['created_by']}  {h['spec_hash'][:12]}",
            highlight=False,
        )
