"""Syncs started from /admin/sources run as tasks of the app (copilot.web.admin.syncing):
a refused one is only logged, a failed one logged with its error, and the app's shutdown
ends those still running before the knowledge base closes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from copilot.web.admin import syncing


class AlreadyRunning(RuntimeError):
    pass


async def _settled() -> None:
    for _ in range(3):  # done callbacks run on the next turns of the loop
        await asyncio.sleep(0)


async def test_stopping_the_app_ends_the_running_syncs() -> None:
    started = asyncio.Event()

    async def long_sync() -> None:
        started.set()
        await asyncio.sleep(60)

    syncing.start_in_background(long_sync, "Company share", AlreadyRunning)
    await started.wait()
    assert syncing.running() == 1
    await syncing.stop_all()
    await _settled()
    assert syncing.running() == 0


async def test_a_refused_or_failed_sync_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def refused() -> None:
        raise AlreadyRunning("a sync runs since 08:00")

    async def broken() -> None:
        raise OSError("the share is not mounted")

    with caplog.at_level(logging.INFO, logger=syncing.__name__):
        syncing.start_in_background(refused, "Company share", AlreadyRunning)
        syncing.start_in_background(broken, "ENG wiki", AlreadyRunning)
        await _settled()
    assert syncing.running() == 0
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "sync of Company share not started from the admin: one is running") in said
    failed = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in failed] == [
        "the sync of ENG wiki started from the admin failed"
    ]
    assert "the share is not mounted" in str(failed[0].exc_info[1])  # type: ignore[index]
