"""Migration 0005 (issue 9): questions stored before it lose the sources the browser gave
them (only answers cite), answers keep theirs; every message is shown, none an old version."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import create_engine, text

from copilot.db import migrate
from copilot.settings import Settings
from tests.db.test_migrations import insert_old_user_and_chat

FORGED = [{"file_id": str(uuid.uuid4()), "file_name": "minutes.pdf", "cited": True}]


def test_questions_lose_client_sources_and_answers_keep_theirs(
    database_settings: Settings,
) -> None:
    migrate.upgrade(database_settings, "0004")
    engine = create_engine(migrate.sync_url(database_settings.resolved_database_url))
    ids = {name: uuid.uuid4() for name in ("user", "chat", "question", "answer")}
    as_db = str if engine.dialect.name == "postgresql" else (lambda u: u.hex)
    values = {name: as_db(value) for name, value in ids.items()} | {"sources": json.dumps(FORGED)}
    try:
        with engine.begin() as connection:
            insert_old_user_and_chat(connection, values)
            for message, role in (("question", "user"), ("answer", "assistant")):
                connection.execute(
                    text(
                        "INSERT INTO messages (id, chat_id, role, content, sources, created_at)"
                        f" VALUES (:{message}, :chat, '{role}', 'x', :sources, CURRENT_TIMESTAMP)"
                    ),
                    values,
                )
        migrate.upgrade(database_settings)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT role, sources, deleted_at, superseded_by FROM messages ORDER BY role")
            ).all()
    finally:
        engine.dispose()
    decoded = [
        (r[0], r[1] if isinstance(r[1], list) else json.loads(r[1]), r[2], r[3]) for r in rows
    ]
    assert decoded == [("assistant", FORGED, None, None), ("user", [], None, None)]
