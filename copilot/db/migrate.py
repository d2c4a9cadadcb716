"""Alembic, driven from Python: the CLI, the web app's start-up and the tests share it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine as create_sync_engine

import copilot
from copilot.settings import Settings


def migrations_dir() -> Path:
    """The repository's `migrations/` folder (next to the package, or under the CWD)."""
    for candidate in (Path(copilot.__file__).resolve().parents[1], Path.cwd()):
        if (candidate / "migrations" / "env.py").exists():
            return candidate / "migrations"
    raise FileNotFoundError("cannot find the migrations/ folder next to the copilot package")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser treats % as interpolation; URLs may contain it (encoded passwords).
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    settings.ensure_data_dir()
    command.upgrade(alembic_config(settings.resolved_database_url), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings.resolved_database_url), revision)


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(
        alembic_config(settings.resolved_database_url)
    ).get_current_head()


def current_revision(settings: Settings) -> str | None:
    """The revision the database is at (None for an empty database)."""
    settings.ensure_data_dir()  # SQLite cannot open a file in a missing folder
    engine = create_sync_engine(sync_url(settings.resolved_database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def sync_url(url: str) -> str:
    """The same database through a blocking driver (psycopg serves both modes)."""
    return url.replace("sqlite+aiosqlite", "sqlite", 1)


def include_object_on(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` filter for a database of this dialect.

    Items marked PostgreSQL-only (the full-text index) exist only there; elsewhere their
    absence is expected, not a difference between the models and the database.
    """
    from copilot.db.models import POSTGRESQL_ONLY

    def include_object(
        item: object, name: str | None, kind: str, reflected: bool, compare_to: object
    ) -> bool:
        info = getattr(item, "info", None) or {}
        return dialect == "postgresql" or not info.get(POSTGRESQL_ONLY)

    return include_object
