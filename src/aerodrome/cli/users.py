"""``aerodrome users``: console logins (local passwords); the first admin of a new workspace."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import Engine

from aerodrome.cli.workspace import ConfigOption, fail, load, opened
from aerodrome.errors import AerodromeError
from aerodrome.identity import passwords, store

app = typer.Typer(help="Users' console logins (local passwords, argon2-hashed).", no_args_is_help=True)
out = Console()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (mode 600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def first_login(engine: Engine, email: str, password_file: Path, *, actor: str) -> str | None:
    """Give the user a random password when they have none; it is written to ``password_file``.

    Returns the new password, or None when the user already had one (nothing is changed).
    """
    if passwords.has_password(engine, email):
        return None
    password = passwords.generate()
    passwords.set_password(engine, email, password, actor=actor)
    write_private(password_file, password + "\n")
    return password


@app.command("set-password")
def set_password(
    email: str = typer.Argument(..., help="the user's email"),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="read the password from this file (default: ask for it)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Set a user's console password (at least 12 characters); the user must exist."""
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").strip()
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        store.apply_config(engine, cfg)
        try:
            passwords.set_password(engine, email, password, actor="cli")
        except AerodromeError as exc:
            fail(exc.message)
    out.print(f"password set for {email}; sign in at /console/login", highlight=False)
