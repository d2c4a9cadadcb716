"""Syncs on a schedule inside the web app: every source is synced again once its last
sync started `interval` ago (or when it never was), one source at a time, so a schedule
never competes with itself for the two cores."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import select

from copilot.db.models import DataSource, SyncJob
from copilot.db.types import utcnow
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.sources.sync import SyncAlreadyRunning, sync_source

log = logging.getLogger(__name__)

#: How often the schedule looks for sources that are due.
CHECK_SECONDS = 60.0


class SyncSchedule:
    def __init__(
        self, kb: KnowledgeBase, interval: timedelta, *, check_seconds: float = CHECK_SECONDS
    ) -> None:
        self.kb = kb
        self.interval = interval
        self.check_seconds = check_seconds
        self._task: asyncio.Task[None] | None = None

    async def run_due(self) -> list[SyncJob]:
        """Sync every source that is due now; the jobs run (one refused as already running,
        or that failed to start, is logged and skipped: the next check tries again)."""
        async with self.kb.sessions() as session:
            sources = (
                await session.execute(
                    select(DataSource.id, DataSource.name).order_by(DataSource.name)
                )
            ).all()
            last_started = {
                source_id: await session.scalar(
                    select(SyncJob.started_at)
                    .where(SyncJob.source_id == source_id)
                    .order_by(SyncJob.started_at.desc())
                    .limit(1)
                )
                for source_id, _ in sources
            }
        due_before = utcnow() - self.interval
        jobs = []
        for source_id, name in sources:
            started = last_started[source_id]
            if started is not None and started > due_before:
                continue
            try:
                jobs.append(await sync_source(self.kb, source_id, trigger="schedule"))
            except SyncAlreadyRunning:
                log.info("scheduled sync of %s skipped: one is running", name)
            except Exception:
                log.exception("scheduled sync of %s failed", name)
        return jobs

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_running())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _keep_running(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:  # the database away for a moment: try again at the next check
                log.exception("the sync schedule's check failed")
            await asyncio.sleep(self.check_seconds)
