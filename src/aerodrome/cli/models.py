"""``aerodrome models``: the model catalog."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aerodrome.catalog.store import build_catalog
from aerodrome.cli.workspace import ConfigOption, load, opened
from aerodrome.config import DeploymentConfig

app = typer.Typer(help="The model catalog: aliases, deployments, status, prices.", no_args_is_help=True)
out = Console()


@app.command("list")
def list_models(config: Path | None = ConfigOption) -> None:
    """List aliases and the deployments behind them."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        catalog = build_catalog(cfg, engine)
    table = Table(title="Aerodrome model catalog")
    for col in (
        "alias",
        "deployment",
        "provider",
        "upstream model",
        "status",
        "hosting",
        "max data class",
        "$/M in",
        "$/M out",
    ):
        table.add_column(col)
    listed = set()
    for alias in catalog.aliases.values():
        for name in alias.deployments:
            listed.add(name)
            table.add_row(alias.name, *_row(catalog.deployments[name]))
    for d in catalog.deployments.values():
        if d.name not in listed:
            table.add_row("-", *_row(d))
    out.print(table)


def _row(d: DeploymentConfig) -> list[str]:
    return [
        d.name,
        d.provider,
        d.model,
        d.status,
        d.hosting,
        d.max_data_class,
        f"{d.prices.input_per_mtok:g}",
        f"{d.prices.output_per_mtok:g}",
    ]
