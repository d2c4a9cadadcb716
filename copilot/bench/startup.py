"""`copilot bench startup`: how long `copilot serve` takes to be ready, and its memory.

Runs the commands a user runs, as child processes on a scratch data dir with every engine
embedded: `copilot setup`, then `copilot serve` until /healthz answers ok (a fresh data
dir), stopped with SIGTERM; optionally `copilot ingest` of a folder (or of a SQuAD file's
documents, e.g. COVID-QA); then `copilot serve` again on the existing data. Each start is
timed from the process's launch to the first ok /healthz, and the server's resident
memory (RSS, with its children) is read once it is idle. The embedded Redis daemonizes,
so its memory is reported apart, and the run checks that no process outlives a stop.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from copilot.bench.serving import (
    copilot_env,
    embedded_redis_pid,
    run_copilot,
    serve_subprocess,
    still_running,
)

Say = Callable[[str], None]

TARGET_READY_SECONDS = 5.0
TARGET_RSS_MB = 600.0
#: Idle means after the start-up work: give late imports and the first GC a moment.
SETTLE_SECONDS = 2.0


@dataclass
class ServeFigures:
    """One start of `copilot serve`."""

    ready_seconds: float
    rss_mb: float
    redis_rss_mb: float | None
    survivors: list[str] = field(default_factory=list)
    #: The app's own account of its start-up (the rest of ready_seconds is imports).
    app_log: str = ""


@dataclass
class StartupReport:
    setup_seconds: float
    fresh: ServeFigures
    restart: ServeFigures
    ingested: str | None = None
    ingest_seconds: float | None = None
    cpus: int = 0
    load_average_before: float = 0.0
    target_ready_seconds: float = TARGET_READY_SECONDS
    target_rss_mb: float = TARGET_RSS_MB

    @property
    def targets(self) -> dict[str, bool]:
        ready = max(self.fresh.ready_seconds, self.restart.ready_seconds)
        return {
            f"ready <= {self.target_ready_seconds:g} s after setup": ready
            <= self.target_ready_seconds,
            f"RSS <= {self.target_rss_mb:g} MB{' after ingesting' if self.ingested else ''}": (
                self.restart.rss_mb <= self.target_rss_mb
            ),
            "no process outlives a stop": not (self.fresh.survivors or self.restart.survivors),
        }

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "targets": self.targets}


def run_startup_bench(
    *, ingest: list[Path] | None = None, documents: dict[str, str] | None = None, say: Say = print
) -> StartupReport:
    """Setup, a fresh start, an optional ingest of `ingest` paths or of `documents` (name ->
    text, written as files), and a restart on the existing data, in a scratch home."""
    with tempfile.TemporaryDirectory(prefix="copilot-startup-bench-") as scratch:
        home = Path(scratch)
        data = home / "data"
        env = copilot_env(data)
        load_before = os.getloadavg()[0]
        say("copilot setup ...")
        started = time.perf_counter()
        run_copilot(["setup"], env, cwd=home)  # the demo admin owns what is ingested
        setup_seconds = time.perf_counter() - started
        say("copilot serve on a fresh data dir ...")
        fresh = _serve_once(env, home, data)
        say(f"ready in {fresh.ready_seconds:.1f} s, {fresh.rss_mb:.0f} MB")
        ingested, ingest_seconds = None, None
        if documents:
            folder = home / "documents"
            folder.mkdir()
            for number, (name, text) in enumerate(documents.items()):
                (folder / f"{number:05d}-{_file_name(name)}.txt").write_text(text, "utf-8")
            ingest = [folder]
        if ingest:
            ingested = ", ".join(str(p) for p in ingest) if not documents else "documents"
            say(f"copilot ingest {ingested} ...")
            started = time.perf_counter()
            run_copilot(["ingest", *map(str, ingest)], env, cwd=home)
            ingest_seconds = time.perf_counter() - started
        say("copilot serve again, on the existing data ...")
        restart = _serve_once(env, home, data)
        say(f"ready in {restart.ready_seconds:.1f} s, {restart.rss_mb:.0f} MB")
        return StartupReport(
            setup_seconds=round(setup_seconds, 2),
            fresh=fresh,
            restart=restart,
            ingested=ingested,
            ingest_seconds=round(ingest_seconds, 1) if ingest_seconds is not None else None,
            cpus=os.cpu_count() or 0,
            load_average_before=round(load_before, 2),
        )


def _serve_once(env: dict[str, str], home: Path, data: Path) -> ServeFigures:
    log_path = home / "serve.log"
    log_path.unlink(missing_ok=True)
    with (
        log_path.open("ab") as log,
        serve_subprocess(env, cwd=home, log=log, stop=signal.SIGTERM) as server,
    ):
        time.sleep(SETTLE_SECONDS)
        started = {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
        redis = embedded_redis_pid(data)
        rss = server.rss_mb()
        redis_rss = _rss_mb(redis) if redis else None
    gone = started | {server.pid} | ({redis} if redis else set())
    return ServeFigures(
        ready_seconds=round(server.ready_seconds, 2),
        rss_mb=round(rss, 1),
        redis_rss_mb=round(redis_rss, 1) if redis_rss is not None else None,
        survivors=still_running(gone),
        app_log=next(
            (
                line.split("copilot.web.runtime: ", 1)[1]
                for line in log_path.read_text(errors="replace").splitlines()
                if "copilot.web.runtime: started in" in line
            ),
            "",
        ),
    )


def _rss_mb(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.NoSuchProcess:
        return None


def _file_name(title: str) -> str:
    safe = "".join(c if c.isalnum() else "-" for c in title)[:60].strip("-")
    return safe or "document"
