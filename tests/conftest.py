"""Fixtures that start real engines: SQLite files, and the PostgreSQL and Redis servers.

PostgreSQL and Redis come from COPILOT_TEST_POSTGRES_URL and COPILOT_TEST_REDIS_URL. When a
variable is unset (a laptop), tests needing it skip with the reason; when it is set and
the server cannot be reached, they fail: CI sets both, so nothing skips there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import func, select

from copilot import users
from copilot.db import migrate
from copilot.db.engine import create_engine, session_factory
from copilot.db.models import Chunk
from copilot.db.seed import seed_defaults
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.knowledge.ingest import Ownership
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.settings import Settings
from copilot.users import Principal


def _shared(*parts: str) -> Path:
    """`shared/...` beside the checkout, or beside any folder above it (a worktree's)."""
    here = Path(__file__).resolve()
    candidates = [folder.joinpath("shared", *parts) for folder in here.parents[1:]]
    return next((c for c in candidates if c.exists()), here.parents[2].joinpath("shared", *parts))


FIXTURES = _shared("fixtures")
COVIDQA = _shared("data", "covidqa", "covidqa.json")


def _required_url(variable: str) -> str:
    url = os.environ.get(variable, "")
    if not url:
        pytest.skip(f"{variable} is not set; set it to run the tests against a real server")
    return url


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server's URL (psycopg3 form), checked to be reachable."""
    url = _required_url("COPILOT_TEST_POSTGRES_URL")
    try:
        with psycopg.connect(_libpq(url), connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        pytest.fail(f"COPILOT_TEST_POSTGRES_URL={url} is set but unreachable: {error}")
    return url


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL server, dropped afterwards."""
    name = f"copilot_test_{uuid.uuid4().hex[:12]}"
    admin = _libpq(postgres_server_url)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_server_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = _required_url("COPILOT_TEST_REDIS_URL")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as error:
        pytest.fail(f"COPILOT_TEST_REDIS_URL={url} is set but unreachable: {error}")
    return url


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads a developer's .env or COPILOT_* variables by accident."""
    for name in list(os.environ):
        if name.startswith("COPILOT_") and not name.startswith("COPILOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(params=["sqlite", "postgres"])
def database_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for an empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    return Settings(
        data_dir=tmp_path / "data", database_url=request.getfixturevalue("postgres_url")
    )


@pytest.fixture(scope="session")
def embeddings() -> LocalMiniLM:
    """The real model, loaded once for the whole run."""
    return LocalMiniLM()


@dataclass
class People:
    alice: Principal  # ENG, Regular User
    bob: Principal  # ENG, Regular User
    carol: Principal  # FIN, Regular User
    power: Principal  # FIN, Power User (reads confidential)
    admin: Principal  # ADM, Super Admin


@asynccontextmanager
async def open_kb(settings: Settings, embeddings: LocalMiniLM) -> AsyncIterator[KnowledgeBase]:
    """A migrated, seeded knowledge base on the settings' database."""
    migrate.upgrade(settings)
    engine = create_engine(settings)
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_defaults(session)
    knowledge = await KnowledgeBase.open(settings, sessions, embeddings=embeddings)
    yield knowledge
    await knowledge.close()
    await engine.dispose()


def owned_by(principal: Principal, **kwargs: Any) -> Ownership:
    """The ownership of a file `principal` adds (personal unless `scope` says otherwise)."""
    return Ownership(uuid.UUID(principal.user_id), **kwargs)


async def stored_counts(kb: KnowledgeBase, file_id: str) -> tuple[int, int, int]:
    """A file's chunks: rows in the database, entries in the keyword and vector indexes."""
    async with kb.sessions() as session:
        in_db = await session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.file_id == uuid.UUID(file_id))
        )
    return (
        in_db or 0,
        await kb.indexes.keyword.count(file_id),
        await kb.indexes.vector.count(file_id),
    )


@pytest.fixture
async def kb(sqlite_settings: Settings, embeddings: LocalMiniLM) -> AsyncIterator[KnowledgeBase]:
    async with open_kb(sqlite_settings, embeddings) as knowledge:
        yield knowledge


@pytest.fixture
async def people(kb: KnowledgeBase) -> People:
    specs = {
        "alice": ("Regular User", "ENG"),
        "bob": ("Regular User", "ENG"),
        "carol": ("Regular User", "FIN"),
        "power": ("Power User", "FIN"),
        "admin": ("Super Admin", "ADM"),
    }
    made = {}
    async with kb.sessions() as session:
        for name, (role, department) in specs.items():
            user = await users.create_user(
                session,
                f"{name}@example.com",
                display_name=name.title(),
                password=None,
                role=role,
                department=department,
            )
            made[name] = users.principal_of(user)
    return People(**made)
