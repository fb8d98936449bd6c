"""``aerodrome audit``: verify the hash chain of the audit trail."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from aerodrome.audit import trail
from aerodrome.cli.workspace import ConfigOption, fail, load, opened

app = typer.Typer(help="The audit trail: append-only, hash-chained.", no_args_is_help=True)
out = Console()


@app.command("verify")
def verify(config: Path | None = ConfigOption) -> None:
    """Check every link of the audit trail; exit 1 at the first altered or missing event.

    Prints the number of events and the hash of the newest one: record them elsewhere (a ticket, a
    log archive) so that a later truncation of the newest events can be detected too.
    """
    settings, cfg, _ = load(config)
    with opened(settings, cfg) as engine:
        result = trail.verify(engine)
        head = trail.head(engine)
    if not result.ok:
        fail(
            f"audit trail broken at event {result.first_bad_seq}: {result.reason} ({result.events} events read)"
        )
    out.print(f"audit trail intact: {result.events} events; newest {head or '-'}", highlight=False)
