"""``aerodrome keys``: create, list and revoke API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aerodrome.cli.workspace import ConfigOption, fail, load, opened
from aerodrome.config import DATA_CLASS_ORDER, Budget
from aerodrome.errors import AerodromeError
from aerodrome.identity import store
from aerodrome.identity.keys import PREFIX_LEN

app = typer.Typer(help="API keys: shown once, stored hashed, scoped to a department.", no_args_is_help=True)
out = Console()


@app.command("create")
def create(
    department: str = typer.Option(..., "--department", "-d", help="department the key belongs to"),
    role: str = typer.Option("user", "--role", "-r", help="role of the key"),
    name: str = typer.Option("", "--name", "-n", help="a name to recognise the key by"),
    user: str | None = typer.Option(None, "--user", help="email of the user the key acts for"),
    aliases: str | None = typer.Option(None, "--aliases", help="comma-separated aliases the key may use"),
    expires_in_days: float | None = typer.Option(None, "--expires-in-days", min=0.0001),
    rpm: int | None = typer.Option(None, "--rpm", min=1),
    tpm: int | None = typer.Option(None, "--tpm", min=1),
    data_class: str | None = typer.Option(
        None, "--data-class", help="declared class of everything sent with the key (public ... restricted)"
    ),
    budget_usd: float | None = typer.Option(None, "--budget-usd", min=0.000001, help="monthly USD budget"),
    config: Path | None = ConfigOption,
) -> None:
    """Create a key. The key is printed once, alone on the last line."""
    if data_class is not None and data_class not in DATA_CLASS_ORDER:
        fail(f"--data-class must be one of {list(DATA_CLASS_ORDER)}")
    settings, cfg, _ = load(config)
    req = store.KeyRequest(
        department_id=department,
        role=role,
        name=name,
        user_email=user,
        aliases=[a.strip() for a in aliases.split(",") if a.strip()] if aliases else None,
        rpm=rpm,
        tpm=tpm,
        budget=Budget(usd=budget_usd) if budget_usd else None,
        data_class=data_class,
        expires_at=datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    with opened(settings, cfg) as engine:
        store.apply_config(engine, cfg)
        try:
            plaintext, record = store.create_key(engine, req, actor="cli")
        except AerodromeError as exc:
            fail(exc.message)
    out.print(
        f"created key {record['prefix']} ({record['id']}) for department {department}, role {role}; "
        "it is shown once:",
        highlight=False,
        soft_wrap=True,
    )
    print(plaintext)


@app.command("list")
def list_keys(
    department: str | None = typer.Option(None, "--department", "-d"),
    all_keys: bool = typer.Option(False, "--all", help="include revoked keys"),
    config: Path | None = ConfigOption,
) -> None:
    """List keys (never their secrets)."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        rows = store.list_keys(engine, None, "all", department=department, include_revoked=all_keys)
    table = Table(title="API keys")
    # prefix and id are what `keys revoke` takes: never cut them, however narrow the terminal
    table.add_column("prefix", no_wrap=True, min_width=PREFIX_LEN)
    table.add_column("id", overflow="fold")
    for col in ("name", "department", "role", "aliases", "expires", "revoked", "created"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["prefix"],
            r["id"],
            r["name"],
            r["department_id"],
            r["role"],
            ",".join(r["aliases"]) if r["aliases"] is not None else "all",
            str(r["expires_at"] or "-"),
            str(r["revoked_at"] or "-"),
            str(r["created_at"])[:19],
        )
    out.print(table)


@app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="the key's id or prefix"), config: Path | None = ConfigOption
) -> None:
    """Revoke a key; every server refuses it within seconds."""
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        try:
            record = store.revoke_key(engine, key, actor="cli")
        except AerodromeError as exc:
            fail(exc.message)
    out.print(f"revoked key {record['prefix']} ({record['id']})", highlight=False)
    if cfg.redis is not None:
        from aerodrome.identity.revocations import announce_now

        if not announce_now(cfg.redis, record["prefix"], base_dir=cfg.base_dir):
            out.print(
                f"Redis is unreachable: servers refuse the key within server.key_cache_ttl_s "
                f"({cfg.server.key_cache_ttl_s:g} s) instead of at once",
                highlight=False,
            )
