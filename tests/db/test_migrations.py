"""Alembic is the only way the schema changes: it must go up, down and up again on both
databases, and leave exactly the schema the models describe."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text

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
    "data_sources",
    "sync_jobs",
    "file_versions",
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


def insert_old_user_and_chat(connection: Connection, values: dict[str, object]) -> None:
    """A user (id :user) and their chat (id :chat) written with plain SQL, as rows from
    before a migration would be (the models may already have newer columns)."""
    connection.execute(
        text(
            "INSERT INTO users (id, email, display_name, is_active, created_at,"
            " updated_at) VALUES (:user, 'old@example.com', 'Old', true,"
            " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        values,
    )
    connection.execute(
        text(
            "INSERT INTO chats (id, user_id, title, metadata, created_at, updated_at)"
            " VALUES (:chat, :user, 't', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        values,
    )


def test_feedback_given_before_0004_gets_its_chat(database_settings: Settings) -> None:
    migrate.upgrade(database_settings, "0003")
    engine = create_engine(migrate.sync_url(database_settings.resolved_database_url))
    ids = {name: uuid.uuid4() for name in ("user", "chat", "message", "feedback")}
    # SQLite stores UUIDs as 32 hex digits, PostgreSQL as its uuid type.
    as_db = str if engine.dialect.name == "postgresql" else (lambda u: u.hex)
    values = {name: as_db(value) for name, value in ids.items()}
    try:
        with engine.begin() as connection:
            insert_old_user_and_chat(connection, values)
            connection.execute(
                text(
                    "INSERT INTO messages (id, chat_id, role, content, sources, created_at)"
                    " VALUES (:message, :chat, 'assistant', 'a', '[]', CURRENT_TIMESTAMP)"
                ),
                values,
            )
            connection.execute(
                text(
                    "INSERT INTO feedback (id, message_id, user_id, value, created_at,"
                    " updated_at) VALUES (:feedback, :message, :user, -1, CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                ),
                values,
            )
        migrate.upgrade(database_settings)
        with engine.connect() as connection:
            chat_id = connection.execute(text("SELECT chat_id FROM feedback")).scalar_one()
    finally:
        engine.dispose()
    assert str(chat_id).replace("-", "") == ids["chat"].hex


def _chunk_columns(settings: Settings) -> set[str]:
    engine = create_engine(migrate.sync_url(settings.resolved_database_url))
    try:
        return {column["name"] for column in inspect(engine).get_columns("chunks")}
    finally:
        engine.dispose()


def test_0006_adds_chunk_location_and_language_and_takes_them_away(
    database_settings: Settings,
) -> None:
    migrate.upgrade(database_settings, "0005")
    assert not {"location", "language"} & _chunk_columns(database_settings)

    migrate.upgrade(database_settings, "0006")
    assert {"location", "language"} <= _chunk_columns(database_settings)

    migrate.downgrade(database_settings, "0005")
    assert not {"location", "language"} & _chunk_columns(database_settings)

    migrate.upgrade(database_settings)
    assert {"location", "language"} <= _chunk_columns(database_settings)
