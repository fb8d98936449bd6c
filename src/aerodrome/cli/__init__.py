"""The ``aerodrome`` command line: one module per command group."""

from __future__ import annotations

import typer

from aerodrome.cli import (
    audit,
    db,
    demo,
    evals,
    evidence,
    keys,
    knowledge,
    models,
    redteam,
    serve,
    usecases,
    users,
    worker,
)

app = typer.Typer(
    name="aerodrome",
    help="Aerodrome: a governed gateway and platform that takes AI use cases from pilot to production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(serve.init)
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("purge")(worker.purge)
app.command("demo")(demo.demo)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(models.app, name="models")
app.add_typer(knowledge.app, name="collections")
app.add_typer(audit.app, name="audit")
app.add_typer(usecases.app, name="usecases")
app.add_typer(evals.app, name="eval")
app.command("ingest")(knowledge.ingest)
app.command("quality")(knowledge.quality)
app.command("search")(knowledge.search)
app.command("report")(evidence.report)
app.command("redteam")(redteam.redteam)
usecases.app.command("advance")(evidence.advance)


def main() -> None:
    app()
