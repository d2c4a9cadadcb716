"""Accounts for tests that sign in through the real login form: one password, hashed once
(Argon2 is slow on purpose, and these tests make many users)."""

from __future__ import annotations

import functools
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot import users
from copilot.users import Principal

PASSWORD = "correct horse battery"


@functools.cache
def password_hash() -> str:
    return users.hash_password(PASSWORD)


async def make_account(
    sessions: async_sessionmaker[AsyncSession], name: str, *, role: str, department: str
) -> Principal:
    """A fresh user (unique email from `name`) whose password is PASSWORD."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    async with sessions() as session:
        user = await users.create_user(
            session,
            email,
            display_name=name.title(),
            password=None,
            role=role,
            department=department,
        )
        user.password_hash = password_hash()
        await session.commit()
        return users.principal_of(user)
