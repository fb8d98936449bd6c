"""``aerodrome init`` and ``aerodrome serve``."""

from __future__ import annotations

import os
from pathlib import Path

import typer
import uvicorn
from rich.console import Console

from aerodrome.cli.starter import STARTER
from aerodrome.cli.workspace import ConfigOption, database, err, fail, load
from aerodrome.errors import AerodromeError
from aerodrome.runtime import open_database

out = Console()


def init(directory: Path = typer.Option(Path("."), "--dir", help="where to write aerodrome.yaml")) -> None:
    """Write a commented starter aerodrome.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "aerodrome.yaml"
    if path.exists():
        fail(f"{path} exists; not overwriting it")
    path.write_text(STARTER, encoding="utf-8")
    out.print(f"wrote {path}", highlight=False)
    _first_admin(path)
    out.print(
        f"next: aerodrome keys create --config {path} --department platform --role platform_admin"
        f"\n      aerodrome serve --config {path}   (the console is at /console)",
        highlight=False,
    )


def _first_admin(path: Path) -> None:
    """The starter's platform admin gets a console password, written beside the config (mode 600)."""
    from aerodrome.cli.users import first_login
    from aerodrome.config import load_config
    from aerodrome.identity import store
    from aerodrome.settings import Settings

    cfg = load_config(path)
    admins = [u for u in cfg.users if "platform_admin" in u.roles]
    if not admins:
        return
    settings = Settings()
    try:
        engine = open_database(cfg, settings.database_url)
    except AerodromeError as exc:  # e.g. PostgreSQL not upgraded yet: say how to do it later
        err.print(
            f"no console login made ({exc.message}); after `aerodrome db upgrade`, run "
            f"`aerodrome users set-password {admins[0].email} --config {path}`",
            highlight=False,
        )
        return
    try:
        store.apply_config(engine, cfg)
        password_file = path.parent / "admin.password"
        made = first_login(engine, admins[0].email, password_file, actor="init")
    finally:
        engine.dispose()
    if made:
        out.print(
            f"console login: {admins[0].email} / {made}  (also in {password_file}, mode 600; change it with "
            f"`aerodrome users set-password`)",
            highlight=False,
        )


def run_server(config_file: Path | None, host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Serve with uvicorn; every worker builds its app from the environment set here."""
    if config_file is not None:
        os.environ["AERODROME_CONFIG"] = str(config_file.resolve())
    uvicorn.run(
        "aerodrome.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        server_header=False,
    )


def serve(
    config: Path | None = ConfigOption,
    host: str | None = typer.Option(None, "--host", help="address to listen on (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", "-p", help="port (default 8080)"),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="worker processes"),
) -> None:
    """Serve the gateway, the API and the metrics."""
    settings, cfg, path = load(config)
    if path is None:
        err.print(
            "no config file: serving the embedded defaults with no models (`aerodrome init` writes one)"
        )
    database(
        settings, cfg
    ).dispose()  # migrate (embedded) or refuse a stale schema (scaled) before any worker starts
    run_server(
        path, host or settings.host, port or settings.port, workers or settings.workers, settings.log_level
    )
