"""The database itself refuses bad rows, whichever code path writes them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.db import migrate
from copilot.db.engine import create_engine, session_factory
from copilot.db.models import Chat, Department, Feedback, File, Message, Permission, Role
from copilot.db.seed import DEPARTMENTS, PERMISSIONS, ROLES, seed_defaults
from copilot.settings import Settings


@pytest.fixture
async def session(database_settings: Settings) -> AsyncIterator[AsyncSession]:
    migrate.upgrade(database_settings)
    engine = create_engine(database_settings)
    async with session_factory(engine)() as session:
        await seed_defaults(session)
        yield session
    await engine.dispose()


async def _owner(session: AsyncSession) -> uuid.UUID:
    user = await users.create_user(
        session,
        f"u{uuid.uuid4().hex[:6]}@example.com",
        display_name="U",
        password=None,
        role="Regular User",
    )
    return user.id


def _file(owner_id: uuid.UUID, **overrides: object) -> File:
    values: dict[str, object] = {
        "owner_id": owner_id,
        "original_name": "a.pdf",
        "mime_type": "application/pdf",
        "size_bytes": 10,
        "sha256": hashlib.sha256(b"a").hexdigest(),
    }
    values.update(overrides)
    return File(**values)


async def _refused(session: AsyncSession, *rows: object) -> None:
    session.add_all(rows)
    with pytest.raises(IntegrityError):
        await session.commit()
    await session.rollback()


async def test_good_file_is_accepted(session: AsyncSession) -> None:
    owner = await _owner(session)
    session.add(_file(owner))
    await session.commit()
    stored = await session.scalar(select(File).where(File.owner_id == owner))
    assert stored is not None and stored.status == "pending" and stored.scope == "personal"
    assert stored.created_at.tzinfo is not None


async def test_bad_status_refused(session: AsyncSession) -> None:
    await _refused(session, _file(await _owner(session), status="done"))


async def test_zero_size_refused(session: AsyncSession) -> None:
    await _refused(session, _file(await _owner(session), size_bytes=0))


async def test_bad_scope_and_classification_refused(session: AsyncSession) -> None:
    owner = await _owner(session)
    await _refused(session, _file(owner, scope="world"))
    await _refused(session, _file(owner, classification="top"))


async def test_duplicate_sha256_per_owner_refused(session: AsyncSession) -> None:
    owner, other = await _owner(session), await _owner(session)
    session.add_all([_file(owner), _file(other)])  # the same content for two owners is fine
    await session.commit()
    await _refused(session, _file(owner, original_name="copy.pdf"))


async def test_feedback_value_and_uniqueness(session: AsyncSession) -> None:
    owner = await _owner(session)
    chat = Chat(user_id=owner)
    message = Message(chat=chat, role="assistant", content="hi")
    session.add_all([chat, message])
    await session.commit()
    message_id, chat_id = message.id, chat.id  # a rollback expires loaded objects
    await _refused(
        session, Feedback(message_id=message_id, chat_id=chat_id, user_id=owner, value=2)
    )
    session.add(Feedback(message_id=message_id, chat_id=chat_id, user_id=owner, value=1))
    await session.commit()
    await _refused(
        session, Feedback(message_id=message_id, chat_id=chat_id, user_id=owner, value=-1)
    )


async def test_message_role_refused(session: AsyncSession) -> None:
    owner = await _owner(session)
    chat = Chat(user_id=owner)
    await _refused(session, chat, Message(chat=chat, role="robot", content="x"))


async def test_naive_timestamps_refused(session: AsyncSession) -> None:
    owner = await _owner(session)
    with pytest.raises(Exception, match="naive datetime"):
        session.add(Chat(user_id=owner, created_at=datetime(2026, 1, 1)))
        await session.commit()
    await session.rollback()
    session.add(Chat(user_id=owner, created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    await session.commit()


async def test_seeding_is_idempotent(session: AsyncSession) -> None:
    assert await seed_defaults(session) == {"departments": 0, "permissions": 0, "roles": 0}
    assert len((await session.scalars(select(Department))).all()) == len(DEPARTMENTS)
    assert len((await session.scalars(select(Permission))).all()) == len(PERMISSIONS)
    roles = {r.name: r for r in (await session.scalars(select(Role))).all()}
    assert set(roles) == {r.name for r in ROLES}
    assert {p.name for p in roles["Super Admin"].permissions} == {n for n, _ in PERMISSIONS}
    assert "admin.conversations" not in {p.name for p in roles["Regular User"].permissions}
