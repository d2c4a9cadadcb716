"""`copilot db`: schema migrations and default data."""

from __future__ import annotations

import typer

from copilot.cli.common import database_session, fail, run, settings_of
from copilot.db import migrate
from copilot.db.seed import seed_defaults

app = typer.Typer(help="Migrate the database schema and seed default data.", no_args_is_help=True)


@app.command()
def upgrade(ctx: typer.Context, revision: str = typer.Argument("head")) -> None:
    """Migrate the schema up to REVISION (default: the newest)."""
    settings = settings_of(ctx)
    try:
        migrate.upgrade(settings, revision)
    except Exception as error:
        fail(f"upgrade failed: {error}")
    typer.echo(f"database at {migrate.current_revision(settings)}")


@app.command()
def downgrade(
    ctx: typer.Context, revision: str = typer.Argument(..., help="e.g. base or -1")
) -> None:
    """Migrate the schema down to REVISION."""
    settings = settings_of(ctx)
    try:
        migrate.downgrade(settings, revision)
    except Exception as error:
        fail(f"downgrade failed: {error}")
    typer.echo(f"database at {migrate.current_revision(settings) or 'base'}")


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the schema revision of the database and of the code."""
    settings = settings_of(ctx)
    try:
        revision = migrate.current_revision(settings)
    except Exception as error:
        fail(f"cannot read the database: {error}")
    head = migrate.head_revision(settings)
    typer.echo(f"database: {revision or 'empty'}\ncode:     {head}")
    if revision != head:
        raise typer.Exit(3)


@app.command()
def seed(ctx: typer.Context) -> None:
    """Add the default departments, roles and permissions that are missing."""

    async def body() -> dict[str, int]:
        async with database_session(settings_of(ctx)) as session:
            return await seed_defaults(session)

    try:
        added = run(body())
    except Exception as error:
        fail(f"seeding failed ({error}); is the schema migrated? run copilot db upgrade")
    typer.echo("seeded: " + ", ".join(f"{count} {kind}" for kind, count in added.items()))
