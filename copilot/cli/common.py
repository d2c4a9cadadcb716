"""What every command shares: settings read once, async bodies, errors users can act on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.services import open_services
from copilot.settings import Settings

T = TypeVar("T")


def load_settings(ctx: typer.Context) -> None:
    """Read the settings once for the whole command line."""
    try:
        ctx.obj = Settings()
    except ValidationError as error:
        fail(f"invalid settings: {error}")


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@asynccontextmanager
async def database_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    async with open_services(settings) as services, services.sessions() as session:
        yield session
