"""A migrated database (SQLite and PostgreSQL) holding the known conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.db import migrate
from copilot.db.engine import create_engine, session_factory
from copilot.db.seed import seed_defaults
from copilot.settings import Settings
from tests.review.dataset import Dataset, seed_conversations


@dataclass
class Reviewed:
    sessions: async_sessionmaker[AsyncSession]
    data: Dataset
    dialect: str


@pytest.fixture
async def reviewed(database_settings: Settings) -> AsyncIterator[Reviewed]:
    migrate.upgrade(database_settings)
    engine = create_engine(database_settings)
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_defaults(session)
        data = await seed_conversations(session)
    yield Reviewed(sessions, data, engine.dialect.name)
    await engine.dispose()
