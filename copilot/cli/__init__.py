"""`copilot`: the command line for operators, scripts and evaluation (Typer)."""

from __future__ import annotations

import typer

from copilot.cli import bench, db, health, knowledge, serve, sources, users
from copilot.cli.common import load_settings

app = typer.Typer(
    name="copilot",
    help="Copilot: a self-hosted knowledge copilot. Every command reads COPILOT_* settings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.callback()(load_settings)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.command("health")(health.health)
app.command("setup")(serve.setup)
app.command("serve")(serve.serve)
app.command("ingest")(knowledge.ingest)
app.add_typer(knowledge.files_app, name="files")
app.command("reindex")(knowledge.reindex_command)
app.command("search")(knowledge.search)
app.command("ask")(knowledge.ask)
app.add_typer(sources.app, name="sources")
app.add_typer(bench.app, name="bench")
