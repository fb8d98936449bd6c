"""``aerodrome db``: schema migrations."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from aerodrome.cli.workspace import ConfigOption, load, opened
from aerodrome.storage import migrate

app = typer.Typer(
    help="Database schema: upgrade to this version, show the current revision.", no_args_is_help=True
)
out = Console()


@app.command("upgrade")
def upgrade(config: Path | None = ConfigOption) -> None:
    """Apply every pending migration (a separate step in the scaled mode)."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg, migrate=False) as engine:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine)
        after = migrate.current_revision(engine)
    out.print(f"database at revision {after} (was {before or 'empty'})", highlight=False)


@app.command("current")
def current(config: Path | None = ConfigOption) -> None:
    """Show the database's revision and the one this version needs."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg, migrate=False) as engine:
        cur, head = migrate.current_revision(engine), migrate.head_revision(engine)
    state = "up to date" if cur == head else "out of date: run `aerodrome db upgrade`"
    out.print(f"current: {cur or 'none'}\nrequired: {head}\n{state}", highlight=False)
