"""``aerodrome collections``, ``ingest``, ``quality`` and ``search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

from aerodrome.catalog.store import build_catalog
from aerodrome.cli.workspace import ConfigOption, database, fail, load
from aerodrome.config import CollectionConfig
from aerodrome.errors import AerodromeError
from aerodrome.knowledge import collections as store

if TYPE_CHECKING:
    from aerodrome.knowledge.service import KnowledgeService

app = typer.Typer(help="Knowledge collections: sources, readers, data class.", no_args_is_help=True)
out = Console()


def source_from(value: str) -> dict[str, Any]:
    """A source config from a path or URL given on the command line."""
    if value.startswith(("http://", "https://")):
        if value.rstrip("/").endswith(".xml"):
            return {"kind": "url", "sitemap": value}
        return {"kind": "url", "urls": [value]}
    path = Path(value).expanduser().resolve()
    if path.is_file():
        return {"kind": "folder", "path": str(path.parent), "include": [path.name]}
    if path.is_dir():
        return {"kind": "folder", "path": str(path)}
    fail(f"{value} is neither a folder, a file nor an http(s) URL")
    raise AssertionError


def _service(config: Path | None) -> KnowledgeService:
    from aerodrome.knowledge.service import KnowledgeService

    settings, cfg, _ = load(config)
    engine = database(settings, cfg)
    store.apply_config(engine, cfg)
    catalog = build_catalog(cfg, engine)
    return KnowledgeService(engine, cfg, lambda: catalog, database_url=settings.database_url)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="collection name (lowercase, digits, - and _)"),
    source: list[str] = typer.Option(
        ..., "--source", "-s", help="a folder, a file or an http(s) URL (repeatable)"
    ),
    data_class: str = typer.Option(
        "internal", "--data-class", help="public, internal, confidential or restricted"
    ),
    readers: str = typer.Option(
        "", "--readers", help='comma-separated departments that may read it ("*": all)'
    ),
    reader_roles: str = typer.Option("", "--reader-roles", help="comma-separated roles that may read it"),
    description: str = typer.Option("", "--description"),
    embedding: str = typer.Option("local", "--embedding", help="local or an embeddings alias of the catalog"),
    config: Path | None = ConfigOption,
) -> None:
    """Add (or replace) a collection. Run `aerodrome ingest NAME` to fill it."""
    svc = _service(config)
    try:
        spec = CollectionConfig(
            name=name,
            description=description,
            data_class=data_class,  # type: ignore[arg-type]
            readers={
                "departments": [d.strip() for d in readers.split(",") if d.strip()],  # type: ignore[arg-type]
                "roles": [r.strip() for r in reader_roles.split(",") if r.strip()],
            },
            sources=[source_from(s) for s in source],
            embedding=embedding,
        )
        store.upsert(svc.engine, spec, origin="api", actor="cli")
    except AerodromeError as exc:
        fail(exc.message)
    except ValueError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else "invalid collection")
    out.print(f"collection {name} saved; next: aerodrome ingest {name}", highlight=False)


@app.command("list")
def list_collections(config: Path | None = ConfigOption) -> None:
    """List collections with their data class, readers and last sync."""
    svc = _service(config)
    table = Table(title="Collections")
    for col in ("name", "data class", "readers", "sources", "documents", "last sync", "status"):
        table.add_column(col)
    for row in store.list_all(svc.engine):
        spec = CollectionConfig.model_validate(row["spec"])
        last = row["last_sync"] or {}
        readers = ",".join(spec.readers.departments + [f"role:{r}" for r in spec.readers.roles]) or "-"
        table.add_row(
            spec.name,
            spec.data_class,
            readers,
            str(len(spec.sources)),
            str(last.get("documents", "-")),
            str(row["last_sync_at"] or "never")[:19],
            row["sync_status"],
        )
    out.print(table)


@app.command("remove")
def remove(name: str = typer.Argument(...), config: Path | None = ConfigOption) -> None:
    """Remove a collection added from the CLI or the API, with its index."""
    svc = _service(config)
    try:
        store.remove(svc.engine, name, actor="cli")
    except AerodromeError as exc:
        fail(exc.message)
    svc.index.drop_collection(name)
    out.print(f"collection {name} removed", highlight=False)


def ingest(
    collection: str = typer.Argument(..., help="the collection to sync"),
    config: Path | None = ConfigOption,
) -> None:
    """Sync a collection from its sources (incremental), with a progress bar."""
    svc = _service(config)
    try:
        store.get(svc.engine, collection)
    except AerodromeError as exc:
        fail(exc.message)
    try:
        _ingest(svc, collection)
    except AerodromeError as exc:
        fail(exc.message)
    finally:
        svc.close()


def ingest_all(config: Path) -> None:
    """Sync every collection (the demo does this before serving), with the quality summary."""
    svc = _service(config)
    for row in store.list_all(svc.engine):
        try:
            result = _ingest(svc, row["name"])
        except AerodromeError as exc:
            out.print(f"  [yellow]{row['name']} not ingested:[/] {exc.message}", highlight=False)
            continue
        summary = result.get("quality_summary") or {}
        problems = ", ".join(f"{k} {v}" for k, v in summary.items() if v) or "no problems"
        out.print(
            f"  quality: {problems}  (aerodrome quality {row['name']} --config {config})", highlight=False
        )
    svc.close()


def _ingest(svc: KnowledgeService, collection: str) -> dict[str, Any]:
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    ) as bar:
        task = bar.add_task(collection, total=None, note="")

        def progress(done: int, total: int | None, message: str) -> None:
            bar.update(task, completed=done, total=total, note=message)

        result = svc.sync(collection, progress)
    out.print(
        f"{collection}: {result['documents']} documents ({result['added']} added, {result['updated']} updated, "
        f"{result['unchanged']} unchanged, {result['removed']} removed, {result['errors']} errors), "
        f"{result['chunks_embedded']} chunks embedded in {result['seconds']} s",
        highlight=False,
    )
    for err in result["errors_detail"][:20]:
        out.print(f"  [red]error[/] {err['document_id']}: {err['error']}", highlight=False)
    return result


def quality(
    collection: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """Show the data-quality report of a collection's last sync."""
    svc = _service(config)
    try:
        row = store.get(svc.engine, collection)
    except AerodromeError as exc:
        fail(exc.message)
    report = row["quality"]
    if not report:
        fail(f"{collection} has no quality report yet: run `aerodrome ingest {collection}`")
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from aerodrome.knowledge.quality import render_markdown

        out.print(render_markdown(collection, report), highlight=False)


def search(
    collection: str = typer.Argument(...),
    query: str = typer.Argument(...),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, max=100),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, lexical or dense"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Search a collection (as the operator: no reader check)."""
    svc = _service(config)
    try:
        results = svc.retrieve(None, [collection], query, top_k=top_k, mode=mode)
    except AerodromeError as exc:
        fail(exc.message)
    if as_json:
        print(json.dumps({"query": query, "results": results}, indent=2, default=str))
        return
    for i, r in enumerate(results, start=1):
        where = r["source"]["section"] or (f"page {r['source']['page']}" if r["source"]["page"] else "")
        out.print(
            f"[bold]{i}. {r['title'] or r['document_id']}[/] ({r['document_id']}{', ' + where if where else ''})"
            f"  score {r['score']:.3f}",
            highlight=False,
        )
        out.print("   " + " ".join(r["text"].split())[:300], highlight=False)
    if not results:
        out.print("no results")
