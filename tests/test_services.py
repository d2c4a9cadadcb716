"""The composition root: everything built from Settings alone, and everything it started
stopped on the way out (the embedded Redis server above all: it is nobody's child)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient

from copilot.bench.serving import embedded_redis_pid, still_running
from copilot.db import migrate
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.search.ensemble import FusionWeights
from copilot.services import NotReady, Services, open_services
from copilot.settings import Settings


def _running_redis(data_dir: Path) -> int:
    pid = embedded_redis_pid(data_dir)
    assert pid is not None and psutil.pid_exists(pid)
    return pid


async def test_the_embedded_redis_stops_with_the_services(sqlite_settings: Settings) -> None:
    # Several rounds: the server sees our sockets close a moment late, which once left it
    # counting them as another user's and running on.
    for _ in range(3):
        async with open_services(sqlite_settings, redis=True) as services:
            assert await services.redis.health()
            pid = _running_redis(sqlite_settings.data_dir)
        assert still_running([pid], timeout=5) == []


async def test_the_embedded_redis_stops_when_the_body_fails(sqlite_settings: Settings) -> None:
    with pytest.raises(ZeroDivisionError):
        async with open_services(sqlite_settings, redis=True) as services:
            await services.session_store.revoke_user("nobody")
            pid = _running_redis(sqlite_settings.data_dir)
            1 / 0  # noqa: B018
    assert still_running([pid], timeout=5) == []


async def test_a_shared_embedded_redis_runs_until_its_last_user_closes(
    sqlite_settings: Settings,
) -> None:
    first, second = Services(sqlite_settings), Services(sqlite_settings)
    await first.open_redis()
    await second.open_redis()
    pid = _running_redis(sqlite_settings.data_dir)
    await first.aclose()
    assert psutil.pid_exists(pid) and await second.redis.health()
    await second.aclose()
    assert still_running([pid], timeout=5) == []


async def test_nothing_starts_before_it_is_asked_for(sqlite_settings: Settings) -> None:
    async with open_services(sqlite_settings) as services:
        with pytest.raises(NotReady):
            services.redis  # noqa: B018
        with pytest.raises(NotReady):
            services.kb  # noqa: B018
        assert embedded_redis_pid(sqlite_settings.data_dir) is None


async def test_search_and_limits_come_from_settings_alone(
    tmp_path: Path, embeddings: LocalMiniLM
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        keyword_weight=0.3,
        vector_weight=0.7,
        vector_languages=["en", "de"],
        vector_weight_other_languages=0.1,
        fusion="rrf",
        fusion_normalisation="minmax",
        rrf_c=42,
        retrieval_k=5,
        retrieval_fetch_k=17,
        rate_limit_per_minute=7,
        rate_limits_by_role={"Power User": {"daily_tokens": 99}},  # type: ignore[dict-item]
    )
    migrate.upgrade(settings)
    async with open_services(settings, redis=True, knowledge=True, embeddings=embeddings) as s:
        search = s.kb.search
        assert search.weights == FusionWeights(0.3, 0.7, frozenset({"en", "de"}), 0.1)
        assert (search.fusion, search.normalisation, search.c) == ("rrf", "minmax", 42)
        assert (search.k, search.fetch_k) == (5, 17)
        assert s.chain.search is search
        power = s.limiter.limits_for(["Power User"])
        assert (power.per_minute, power.daily_tokens) == (7, 99)


def test_the_web_app_stops_its_redis_even_when_it_could_not_start(
    sqlite_settings: Settings,
) -> None:
    from copilot.web import runtime
    from copilot.web.server import create_app

    # No migration: the knowledge base cannot open, the app starts degraded.
    with TestClient(create_app(sqlite_settings)) as client:
        assert client.get("/healthz").status_code == 503
        assert runtime.current().startup_error is not None
        pid = _running_redis(sqlite_settings.data_dir)
    assert still_running([pid], timeout=5) == []


async def test_the_services_run_the_ingestion_queue_and_stop_it_on_the_way_out(
    sqlite_settings: Settings, embeddings: LocalMiniLM, tmp_path: Path
) -> None:
    from copilot import users
    from copilot.db.models import File
    from copilot.db.seed import seed_defaults
    from copilot.knowledge.ingest import Ownership
    from copilot.knowledge.jobs import watch

    migrate.upgrade(sqlite_settings)
    note = tmp_path / "note.md"
    note.write_text("# Travel\n\nTrains are booked through the travel portal.\n")
    async with open_services(
        sqlite_settings, knowledge=True, ingestion=True, embeddings=embeddings
    ) as services:
        async with services.sessions() as session:
            await seed_defaults(session)
            user = await users.create_user(
                session, "a@example.com", display_name="A", password=None, role="Regular User"
            )
            await session.commit()
        queue = services.ingestion
        admitted = await queue.submit(note, Ownership(user.id))
        assert isinstance(admitted, File), admitted
        rows = await watch(services.kb, [admitted.id], lambda _: None, interval=0.1)
        assert rows[0].status == "ready" and rows[0].chunk_count >= 1
        workers = list(queue._tasks)
        assert workers and not any(task.done() for task in workers)
        with pytest.raises(RuntimeError, match="running already"):
            await services.start_ingestion()
    assert all(task.done() for task in workers)  # stopped with the services


async def test_the_ingestion_queue_is_not_running_until_started(sqlite_settings: Settings) -> None:
    async with open_services(sqlite_settings) as services:
        assert not services.ingesting
        with pytest.raises(NotReady):
            services.ingestion  # noqa: B018
