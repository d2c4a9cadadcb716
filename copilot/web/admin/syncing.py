"""Syncs started from the admin's "Sync now" button, run in the background of the app.

A sync can take minutes: the request only starts it and returns; the job row it writes
is what the sources page shows. The tasks are held here so they are not garbage-collected
mid-run, and their failures are logged (the job row records what the sync itself caught).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

_running: set[asyncio.Task[None]] = set()


def start_in_background(
    sync: Callable[[], Awaitable[Any]], name: str, already_running: type[Exception]
) -> None:
    """Run `sync()` (one source's sync) as a task of the app's event loop."""
    task = asyncio.create_task(_run(sync, name, already_running), name=f"sync {name}")
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _run(
    sync: Callable[[], Awaitable[Any]], name: str, already_running: type[Exception]
) -> None:
    try:
        await sync()
    except already_running:
        # Another sync claimed the source between the page's check and this one.
        log.info("sync of %s not started from the admin: one is running", name)
    except Exception:
        log.exception("the sync of %s started from the admin failed", name)


async def stop_all() -> None:
    """The app is stopping: end the running syncs before the knowledge base closes (each
    job's row stays `running` under this process's claim, which the next sync recovers)."""
    tasks = list(_running)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def running() -> int:
    """How many syncs started here are running."""
    return len(_running)
