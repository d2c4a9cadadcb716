"""`copilot setup` prepares a fresh install; `copilot serve` runs the web app."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from copilot import users
from copilot.cli.common import database_session, fail, run, settings_of
from copilot.db import migrate
from copilot.db.seed import seed_defaults
from copilot.settings import Settings
from copilot.web.secrets import write_private_file

DEMO_ADMIN = "admin@example.com"


def setup(
    ctx: typer.Context,
    demo_admin: Annotated[bool, typer.Option(help="Create the demo admin.")] = True,
) -> None:
    """Migrate, seed, and create a demo admin (printing its credentials). Idempotent."""
    settings = settings_of(ctx)
    try:
        migrate.upgrade(settings)
    except Exception as error:
        fail(f"migration failed: {error}")
    run(_seed(settings))
    typer.echo(f"database ready at {migrate.current_revision(settings)}")
    if demo_admin:
        password = run(_demo_admin(settings))
        typer.secho(
            f"demo admin: {DEMO_ADMIN} / {password}  (saved in {settings.data_dir}/demo-admin.txt)",
            fg=typer.colors.GREEN,
        )


async def _seed(settings: Settings) -> None:
    async with database_session(settings) as session:
        await seed_defaults(session)


async def _demo_admin(settings: Settings) -> str:
    """The demo admin's password, creating the account on first run."""
    saved = settings.ensure_data_dir() / "demo-admin.txt"
    async with database_session(settings) as session:
        if await users.get_user(session, DEMO_ADMIN) is not None and saved.exists():
            return saved.read_text().strip()
        password = secrets.token_urlsafe(12)
        if (user := await users.get_user(session, DEMO_ADMIN)) is not None:
            user.password_hash = users.hash_password(password)
            await session.commit()
        else:
            await users.create_user(
                session,
                DEMO_ADMIN,
                display_name="Demo Admin",
                password=password,
                role="Super Admin",
                department="ADM",
            )
    # Owner-only from the first byte: never written readable, then chmod-ed.
    write_private_file(saved, password + "\n", replace=True)
    return password


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default from settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the chat UI, /healthz and the admin pages."""
    import uvicorn

    from copilot.web.server import create_app

    settings = settings_of(ctx)
    if migrate.current_revision(settings) != migrate.head_revision(settings):
        fail("the database schema is not up to date: run copilot setup (or copilot db upgrade)")
    try:
        app = create_app(settings)
    except ValueError as unsafe:  # a default secret, an untrusted SSO header...
        fail(str(unsafe))
    _log_to_stderr(settings.log_level)
    base = f"http://{host or settings.host}:{port or settings.port}"
    typer.echo(f"Copilot at {base}/ (admins: {base}/admin)")
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        # The request's client stays the TCP peer: only COPILOT_TRUSTED_PROXIES may speak
        # for another address (copilot.web.proxy_trust), not whoever runs on 127.0.0.1.
        proxy_headers=False,
    )


def _log_to_stderr(level: str) -> None:
    """Copilot's own log lines beside uvicorn's, at COPILOT_LOG_LEVEL (other libraries keep
    their own levels: httpx alone would log every request at INFO)."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger = logging.getLogger("copilot")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
