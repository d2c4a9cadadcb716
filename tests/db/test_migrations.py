"""Alembic is the only way the schema changes: it must go up, down and up again on both
databases, and leave exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from copilot.db import migrate
from copilot.db.models import Base
from copilot.settings import Settings

TABLES = {
    "search_index_state",
    "departments",
    "users",
    "roles",
    "permissions",
    "role_permissions",
    "user_roles",
    "chats",
    "messages",
    "feedback",
    "files",
    "chunks",
    "audit_log",
    "query_log",
    "alembic_version",
}


def _tables(settings: Settings) -> set[str]:
    engine = create_engine(migrate.sync_url(settings.resolved_database_url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_up_down_up(database_settings: Settings) -> None:
    migrate.upgrade(database_settings)
    assert _tables(database_settings) == TABLES
    assert migrate.current_revision(database_settings) == migrate.head_revision(database_settings)

    migrate.downgrade(database_settings, "base")
    assert _tables(database_settings) == {"alembic_version"}
    assert migrate.current_revision(database_settings) is None

    migrate.upgrade(database_settings)
    assert _tables(database_settings) == TABLES


def test_models_and_migrations_agree(database_settings: Settings) -> None:
    migrate.upgrade(database_settings)
    engine = create_engine(migrate.sync_url(database_settings.resolved_database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_object": migrate.include_object_on(connection.dialect.name),
                },
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_indexes_for_access_paths(database_settings: Settings) -> None:
    migrate.upgrade(database_settings)
    engine = create_engine(migrate.sync_url(database_settings.resolved_database_url))
    try:
        inspector = inspect(engine)
        indexed = {
            (table, tuple(index["column_names"]))
            for table in ("messages", "chats", "files", "audit_log")
            for index in inspector.get_indexes(table)
        }
    finally:
        engine.dispose()
    assert ("messages", ("chat_id", "created_at")) in indexed
    assert ("chats", ("user_id", "updated_at")) in indexed
    assert ("files", ("owner_id", "status")) in indexed
    assert ("audit_log", ("created_at",)) in indexed
