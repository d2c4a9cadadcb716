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
