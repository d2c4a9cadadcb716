"""Data sources as an admin sees them: each with its files and its last sync jobs.

A reviewer sees the company's sources and those of the departments in their reach, within
their clearance (a source's classification is its files'), so the page names no source
whose files they could not be told of. Starting a sync needs `admin.datasources`, for a
source they see.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import DataSource, Department, File, SyncJob
from copilot.review.clearance import Clearance
from copilot.review.people import NotAllowed

SYNC_PERMISSION = "admin.datasources"
#: Jobs shown per source, newest first.
JOBS_SHOWN = 5


@dataclass
class JobRow:
    status: str
    trigger: str
    full: bool
    started_at: datetime
    finished_at: datetime | None
    added: int
    updated: int
    deleted: int
    unchanged: int
    failed: int
    errors: list[dict[str, Any]]


@dataclass
class SourceRow:
    id: uuid.UUID
    name: str
    kind: str
    location: str
    scope: str
    department: str | None
    classification: str
    tags: list[str]
    file_count: int
    last_synced_at: datetime | None
    jobs: list[JobRow] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return bool(self.jobs) and self.jobs[0].status == "running"


def _visible(clearance: Clearance) -> ColumnElement[bool]:
    """Company sources, and those of the reach's departments, within the clearance."""
    return and_(
        DataSource.classification.in_(sorted(clearance.principal.classifications)),
        or_(
            DataSource.scope == "company",
            and_(
                DataSource.scope == "department",
                clearance.reach.covers(DataSource.department_id),
            ),
        ),
    )


async def list_sources(session: AsyncSession, clearance: Clearance) -> list[SourceRow]:
    """The sources the admin sees, by name, each with its last `JOBS_SHOWN` jobs."""
    found = (
        await session.execute(
            select(DataSource, Department.code)
            .outerjoin(Department, Department.id == DataSource.department_id)
            .where(_visible(clearance))
            .order_by(DataSource.name)
        )
    ).all()
    ids = [source.id for source, _ in found]
    if not ids:
        return []
    counts = dict(
        (
            await session.execute(
                select(File.source_id, func.count())
                .where(File.source_id.in_(ids))
                .group_by(File.source_id)
            )
        ).all()
    )
    jobs: dict[uuid.UUID, list[JobRow]] = {source_id: [] for source_id in ids}
    ranked = (
        select(
            SyncJob,
            func.row_number()
            .over(
                partition_by=SyncJob.source_id,
                order_by=(SyncJob.started_at.desc(), SyncJob.id.desc()),
            )
            .label("rank"),
        )
        .where(SyncJob.source_id.in_(ids))
        .subquery()
    )
    latest = (
        select(SyncJob).join(ranked, ranked.c.id == SyncJob.id).where(ranked.c.rank <= JOBS_SHOWN)
    )
    for job in (await session.scalars(latest.order_by(SyncJob.started_at.desc()))).all():
        jobs[job.source_id].append(_job_row(job))
    return [
        SourceRow(
            source.id,
            source.name,
            source.kind,
            source.location,
            source.scope,
            code,
            source.classification,
            list(source.tags or []),
            counts.get(source.id, 0),
            source.last_synced_at,
            jobs[source.id],
        )
        for source, code in found
    ]


def _job_row(job: SyncJob) -> JobRow:
    return JobRow(
        job.status,
        job.trigger,
        job.full,
        job.started_at,
        job.finished_at,
        job.added,
        job.updated,
        job.deleted,
        job.unchanged,
        job.failed,
        list(job.errors or []),
    )


async def syncable_source(
    session: AsyncSession, clearance: Clearance, source_id: uuid.UUID
) -> DataSource:
    """A source the admin may start a sync of; NotAllowed says why not."""
    if not clearance.principal.can(SYNC_PERMISSION):
        raise NotAllowed(f"syncing a data source needs the {SYNC_PERMISSION} permission")
    source = await session.scalar(
        select(DataSource).where(DataSource.id == source_id, _visible(clearance))
    )
    if source is None:
        raise NotAllowed("no such data source in your reach")
    return source


async def sync_running(session: AsyncSession, source_id: uuid.UUID) -> bool:
    """Whether a job of the source is marked running (the sync itself refuses a second)."""
    running = await session.scalar(
        select(func.count())
        .select_from(SyncJob)
        .where(SyncJob.source_id == source_id, SyncJob.status == "running")
    )
    return bool(running)
