"""``aerodrome demo``: a demo workspace that serves with no API key and no network."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import Engine

from aerodrome.cli.demo_knowledge import write_knowledge, write_usecases
from aerodrome.cli.knowledge import ingest_all
from aerodrome.cli.serve import run_server
from aerodrome.cli.starter import demo_config
from aerodrome.cli.users import first_login
from aerodrome.cli.workspace import database
from aerodrome.config import load_config
from aerodrome.identity import store
from aerodrome.identity.keys import parse_prefix
from aerodrome.settings import Settings

out = Console()


DEMO_LOGINS = (
    "admin@example.com",
    "employee@example.com",
    "hr.lead@example.com",
    "auditor@example.com",
    "reviewer@example.com",
)


def console_logins(engine: Engine, directory: Path) -> dict[str, str]:
    """Console passwords of the demo users (made once, kept in DIR/logins/, mode 600): email → password."""
    folder = directory / "logins"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o700)
    logins: dict[str, str] = {}
    for email in DEMO_LOGINS:
        path = directory / "admin.password" if email == "admin@example.com" else folder / f"{email}.password"
        if store.user_by_email(engine, email) is None:
            continue
        made = first_login(engine, email, path, actor="demo")
        if made is None and path.exists():
            made = path.read_text().strip()
        if made:
            logins[email] = made
    return logins


def prepare(directory: Path) -> tuple[Path, str]:
    """Create (or reuse) the workspace; returns the config path and the admin key."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "aerodrome.yaml"
    if not path.exists():
        path.write_text(demo_config(), encoding="utf-8")
    write_knowledge(directory)
    write_usecases(directory)
    cfg = load_config(path)
    engine = database(Settings(), cfg)
    store.apply_config(engine, cfg)
    key_file = directory / "admin.key"
    key = key_file.read_text().strip() if key_file.exists() else ""
    prefix = parse_prefix(key)
    valid = prefix is not None and any(
        k["prefix"] == prefix and k["revoked_at"] is None
        for k in store.list_keys(engine, None, "all", department="platform")
    )
    if not valid:
        key, _ = store.create_key(
            engine,
            store.KeyRequest(
                department_id="platform",
                role="platform_admin",
                name="demo admin",
                user_email="admin@example.com",
            ),
            actor="demo",
        )
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
    os.chmod(key_file, 0o600)
    console_logins(engine, directory)
    engine.dispose()
    return path, key


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else "(none)"


def _simulate_when_up(base: str, key: str, reports: Path) -> None:
    """Run the simulated pilot in a thread once the server answers (the server runs in this one)."""
    import threading
    import time

    import httpx

    from aerodrome.cli.simulation import run

    def work() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        try:
            run(base, key, reports, log=lambda line: out.print(f"[bold magenta]{line}[/]", highlight=False))
        except Exception as exc:  # boundary: the demo keeps serving; say what went wrong
            out.print(f"[red]SIMULATION failed: {exc}[/]", highlight=False)

    threading.Thread(target=work, name="aerodrome-simulated-pilot", daemon=True).start()


def demo(
    directory: Path = typer.Option(Path("aerodrome-demo"), "--dir", help="workspace folder"),
    port: int = typer.Option(8080, "--port", "-p"),
    simulate_pilot: bool = typer.Option(
        False,
        "--simulate-pilot",
        help="also run a SIMULATED pilot of the HR policy assistant (simulated users, ratings and timed "
        "tasks through the gateway) and write its report to DIR/reports",
    ),
) -> None:
    """Create a demo workspace and serve it on 127.0.0.1 (no API key, no network)."""
    path, key = prepare(directory)
    ingest_all(path)
    if simulate_pilot:
        _simulate_when_up(f"http://127.0.0.1:{port}", key, directory / "reports")
    base = f"http://127.0.0.1:{port}"
    out.print(
        f"[bold]Aerodrome demo[/] in {directory.resolve()}\n"
        f"  config:     {path}\n"
        f"  admin key:  {directory / 'admin.key'} (mode 600)\n"
        f"  console:    {base}/console  sign in as admin@example.com, password in "
        f"{directory / 'admin.password'} (mode 600): {_read(directory / 'admin.password')}\n"
        f"              other demo users (employee, hr.lead, auditor, reviewer): passwords in {directory / 'logins'}\n"
        f"  gateway:    {base}/v1  (OpenAI-compatible; models: chat-small, embed-small)\n"
        f"  API spec:   {base}/openapi.json\n"
        f"  try:        curl {base}/v1/chat/completions -H 'Authorization: Bearer '$(cat {directory / 'admin.key'}) "
        '-H \'Content-Type: application/json\' -d \'{"model":"chat-small","messages":[{"role":"user",'
        '"content":"[1] Parental leave is 16 weeks at full pay.\\nQuestion: How long is parental leave?"}]}\'\n'
        f"  use cases:  {directory / 'usecases'} (hr-policy-assistant, support-reply-drafter, "
        "contract-clause-extractor)\n"
        f"  run one:    curl {base}/v1/usecases/hr-policy-assistant/run -H 'Authorization: Bearer '$(cat "
        f"{directory / 'admin.key'}) -H 'Content-Type: application/json' "
        '-d \'{"inputs":{"question":"How many weeks of parental leave do birth parents get?"}}\'',
        highlight=False,
        soft_wrap=True,
    )
    print(key, flush=True)
    run_server(path, "127.0.0.1", port, 1)
