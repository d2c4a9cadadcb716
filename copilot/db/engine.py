"""The async engine and session factory: one per process, built from settings."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from copilot.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for the configured database; SQLite gets foreign keys and WAL."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.ensure_data_dir()
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _enable_sqlite_integrity(engine.sync_engine)
        return engine
    return create_async_engine(
        url, pool_size=settings.database_pool_size, pool_pre_ping=True, max_overflow=10
    )


def _enable_sqlite_integrity(engine: Engine) -> None:
    # SQLite ignores foreign keys unless asked per connection; WAL lets readers and one
    # writer work at the same time, which the web app and the CLI need.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
