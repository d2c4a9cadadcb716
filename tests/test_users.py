"""Accounts: Argon2 hashes, sign-in rules, and what roles allow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.db import migrate
from copilot.db.engine import create_engine, session_factory
from copilot.db.seed import seed_defaults
from copilot.settings import Settings


@pytest.fixture
async def session(sqlite_settings: Settings) -> AsyncIterator[AsyncSession]:
    migrate.upgrade(sqlite_settings)
    engine = create_engine(sqlite_settings)
    async with session_factory(engine)() as session:
        await seed_defaults(session)
        yield session
    await engine.dispose()


def test_password_hash_is_argon2_and_verifies() -> None:
    hashed = users.hash_password("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert users.verify_password(hashed, "correct horse")
    assert not users.verify_password(hashed, "wrong horse")
    assert not users.verify_password(None, "correct horse")
    assert not users.verify_password("not a hash", "correct horse")


async def test_authenticate(session: AsyncSession) -> None:
    await users.create_user(
        session,
        "ann@example.com",
        display_name="Ann",
        password="correct horse",
        role="Regular User",
        department="ENG",
    )
    assert await users.authenticate(session, "ann@example.com", "wrong") is None
    assert await users.authenticate(session, "nobody@example.com", "correct horse") is None
    user = await users.authenticate(session, " ANN@example.com ", "correct horse")
    assert user is not None and user.last_login_at is not None

    await users.deactivate(session, "ann@example.com")
    assert await users.authenticate(session, "ann@example.com", "correct horse") is None


async def test_principal_rights(session: AsyncSession) -> None:
    ann = await users.create_user(
        session,
        "ann@example.com",
        display_name="Ann",
        password=None,
        role="Regular User",
        department="ENG",
    )
    principal = users.principal_of(ann)
    assert principal.classifications == {"public", "internal"}
    assert principal.can("chat.use") and not principal.can("admin.conversations")
    assert principal.scope.department_id == str(ann.department_id)

    boss = users.principal_of(await users.set_role(session, "ann@example.com", "Super Admin"))
    assert boss.classifications == {"public", "internal", "confidential", "secret"}
    assert boss.can("admin.conversations")
