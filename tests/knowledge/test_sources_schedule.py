"""The sync schedule: a source is synced when its last sync started an interval ago (or
never), by the web app's services when `sources_sync_interval_minutes` is set."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from copilot.db.models import SyncJob
from copilot.db.types import utcnow
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.sources import NewSource, add_source
from copilot.knowledge.sources.schedule import SyncSchedule
from copilot.services import open_services
from copilot.settings import Settings
from tests.conftest import People


async def _source(kb: KnowledgeBase, people: People, folder: Path) -> uuid.UUID:
    folder.mkdir()
    (folder / "rules.md").write_text("# Rules\n\nThe office closes at six.\n")
    async with kb.sessions() as session:
        new = NewSource("rules", folder, uuid.UUID(people.admin.user_id))
        return (await add_source(session, new)).id


async def test_due_sources_are_synced_and_others_left(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    source_id = await _source(kb, people, tmp_path / "share")
    schedule = SyncSchedule(kb, timedelta(minutes=30))

    [job] = await schedule.run_due()  # never synced: due
    assert (job.trigger, job.status, job.added) == ("schedule", "succeeded", 1)
    assert await schedule.run_due() == []  # synced a moment ago

    async with kb.sessions() as session:
        await session.execute(update(SyncJob).values(started_at=utcnow() - timedelta(minutes=31)))
        await session.commit()
    [again] = await schedule.run_due()
    assert (again.source_id, again.unchanged) == (source_id, 1)


async def test_the_services_run_the_schedule_only_when_an_interval_is_set(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    await _source(kb, people, tmp_path / "share")
    off = Settings(data_dir=kb.settings.data_dir)
    async with open_services(off) as services:
        assert await services.start_sync_schedule() is False

    on = Settings(data_dir=kb.settings.data_dir, sources_sync_interval_minutes=5)
    async with open_services(on) as services:
        assert await services.start_sync_schedule(check_seconds=0.05) is True
        for _ in range(400):  # the first check syncs the never-synced source
            async with services.sessions() as session:
                done = await session.scalar(select(SyncJob).where(SyncJob.status != "running"))
            if done is not None:
                break
            await asyncio.sleep(0.05)
    assert done is not None and (done.trigger, done.status) == ("schedule", "succeeded")
