"""`copilot users`: accounts and roles."""

from __future__ import annotations

from typing import Annotated

import typer
from redis.exceptions import RedisError

from copilot import users
from copilot.cli.common import database_session, fail, run, settings_of
from copilot.db.seed import permission_table
from copilot.services import open_services
from copilot.settings import Settings

app = typer.Typer(help="Create and manage user accounts.", no_args_is_help=True)


@app.command()
def add(
    ctx: typer.Context,
    email: str,
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    department: Annotated[str | None, typer.Option(help="Department code, e.g. ENG.")] = None,
    role: Annotated[str, typer.Option(help="Role name.")] = "Regular User",
    password: Annotated[
        str | None,
        typer.Option(
            help="Password; prompted for when omitted.",
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
        ),
    ] = None,
) -> None:
    """Create a user."""

    async def body() -> None:
        async with database_session(settings_of(ctx)) as session:
            await users.create_user(
                session,
                email,
                display_name=name,
                password=password,
                role=role,
                department=department,
            )

    try:
        run(body())
    except users.AccountError as error:
        fail(str(error))
    typer.echo(f"added {email.strip().lower()} as {role}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List users with department, roles and status."""

    async def body() -> list[tuple[str, str, str, str, str]]:
        async with database_session(settings_of(ctx)) as session:
            return [
                (
                    u.email,
                    u.display_name,
                    u.department.code if u.department else "-",
                    ", ".join(sorted(r.name for r in u.roles)) or "-",
                    "active" if u.is_active else "inactive",
                )
                for u in await users.list_users(session)
            ]

    for row in run(body()):
        typer.echo("\t".join(row))


@app.command()
def roles() -> None:
    """Print what each default role may do, as a Markdown table."""
    typer.echo(permission_table())


@app.command("set-role")
def set_role(ctx: typer.Context, email: str, role: str) -> None:
    """Give a user ROLE (replacing their roles)."""

    async def body() -> None:
        async with database_session(settings_of(ctx)) as session:
            await users.set_role(session, email, role)

    try:
        run(body())
    except users.AccountError as error:
        fail(str(error))
    typer.echo(f"{email} is now {role}")


@app.command()
def deactivate(ctx: typer.Context, email: str) -> None:
    """Refuse a user's sign-in from now on and end their open sessions."""
    settings = settings_of(ctx)

    async def body() -> int | None:
        async with database_session(settings) as session:
            user = await users.deactivate(session, email)
        return await revoke_sessions(settings, str(user.id))

    try:
        revoked = run(body())
    except users.AccountError as error:
        fail(str(error))
    if revoked is None:
        typer.echo(
            f"{email} deactivated (Redis unreachable: open chats stop at their next "
            "message, which checks the database)"
        )
    else:
        typer.echo(f"{email} deactivated; {revoked} open session(s) ended")


async def revoke_sessions(settings: Settings, user_id: str) -> int | None:
    """End every Redis session of the user; None when Redis cannot be reached."""
    async with open_services(settings) as services:
        try:
            await services.open_redis()
            return await services.session_store.revoke_user(user_id)
        except RedisError:
            return None
