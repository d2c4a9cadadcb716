"""Is every backend up? `copilot health`, the admins' /admin/health, and public /healthz.

Each check reports status and latency. Every backend is required: the database, search
and models for answers, and Redis because sign-in and every request's session check need
it (sessions fail closed). Rate limits alone would fail open without it.

One report for both ways in: `check_services(services)` asks each adapter the composition
root built for its own `health()` (the running app passes its runtime, which is its
services; `check_all(settings)` opens the services for the command line and closes them).
The public `liveness(runtime)` says only ok or not (a database and a Redis round trip),
nothing about which backend, where, or why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import text

from copilot.services import Services, open_services
from copilot.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from copilot.search.base import Health
    from copilot.web.runtime import Runtime

#: Opening the embedded indexes and loading a local embedding model is part of what their
#: checks check (from the command line, which has not opened them yet): it takes seconds.
OPENING_TIMEOUT = 60.0


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


async def database_health(engine: AsyncEngine, settings: Settings) -> str:
    """A round trip, and the schema at the revision this code expects."""
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


async def _http_probe(url: str, headers: dict[str, str] | None = None) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url, headers=headers)
    response.raise_for_status()
    return f"{url} answered {response.status_code}"


async def check_chat_model(settings: Settings) -> str:
    """The chat model's endpoint (no client of ours holds one open: LangChain's models
    connect per call)."""
    from pathlib import Path

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


async def check_services(services: Services, timeout: float = 5.0) -> HealthReport:
    """Every adapter's own health, concurrently, each within `timeout` s."""
    settings = services.settings

    async def redis() -> str:
        return await (await services.open_redis()).health()

    def index(which: str) -> Callable[[], Awaitable[str]]:
        async def probe() -> str:
            adapter = getattr(await services.open_indexes(), which)
            health: Health = await adapter.health()
            if not health.ok:
                raise RuntimeError(health.detail)
            return f"{adapter.name}: {health.detail}"

        return probe

    probes: list[tuple[str, Callable[[], Awaitable[str]], float]] = [
        ("database", lambda: database_health(services.engine, settings), timeout),
        ("redis", redis, timeout),
        ("keyword_index", index("keyword"), max(timeout, OPENING_TIMEOUT)),
        ("vector_index", index("vector"), max(timeout, OPENING_TIMEOUT)),
        ("embeddings", lambda: services.embeddings.health(), max(timeout, OPENING_TIMEOUT)),
        ("chat_model", lambda: check_chat_model(settings), timeout),
    ]
    checks = await asyncio.gather(*(_timed(n, True, p, t) for n, p, t in probes))
    return HealthReport(list(checks))


async def check_all(settings: Settings, timeout: float = 5.0) -> HealthReport:
    """For the command line: open the services, ask each, close them all."""
    async with open_services(settings) as services:
        return await check_services(services, timeout)


async def check_runtime(runtime: Runtime, timeout: float = 5.0) -> HealthReport:
    """The detailed report for admins, asking the running app's own clients."""
    return await check_services(runtime, timeout)


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
