"""What every command needs: the config file, the settings, the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import Engine

from aerodrome.config import PlatformConfig, load_config
from aerodrome.errors import AerodromeError
from aerodrome.runtime import open_database
from aerodrome.settings import Settings
from aerodrome.storage.engine import make_engine

err = Console(stderr=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="platform config file (default: $AERODROME_CONFIG or ./aerodrome.yaml)"
)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def config_path(option: Path | None, settings: Settings) -> Path | None:
    if option is not None:
        return option
    if settings.config is not None:
        return settings.config
    default = Path("aerodrome.yaml")
    return default if default.exists() else None


def load(option: Path | None) -> tuple[Settings, PlatformConfig, Path | None]:
    settings = Settings()
    path = config_path(option, settings)
    try:
        return settings, load_config(path), path
    except AerodromeError as exc:
        fail(exc.message)
        raise  # unreachable


@contextmanager
def opened(settings: Settings, config: PlatformConfig, *, migrate: bool = True) -> Iterator[Engine]:
    """The database for one command, closed when the command is done."""
    engine = database(settings, config, migrate=migrate)
    try:
        yield engine
    finally:
        engine.dispose()


def database(settings: Settings, config: PlatformConfig, *, migrate: bool = True) -> Engine:
    try:
        if migrate:
            return open_database(config, settings.database_url)
        return make_engine(settings.database_url or config.resolved_database_url())
    except AerodromeError as exc:
        fail(exc.message, code=2)
        raise  # unreachable
