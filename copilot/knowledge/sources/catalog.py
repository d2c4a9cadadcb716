"""The data sources an admin has added: add one (checked), list them with their last job,
remove one with all of its files (from both indexes, then the database)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.db.models import CLASSIFICATIONS, DataSource, File, SyncJob
from copilot.knowledge.ingest import delete_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.sources.sync import Counts, SyncAlreadyRunning, claim_source, finish_job

SOURCE_SCOPES = ("department", "company")
MAX_NAME_CHARS = 100


class SourceError(ValueError):
    """A data source cannot be added, found or removed as asked; the message says why."""


@dataclass(frozen=True)
class NewSource:
    """What `add_source` is asked for (a folder, for now)."""

    name: str
    location: Path
    owner_id: uuid.UUID
    scope: str = "company"
    department_code: str | None = None
    classification: str = "internal"
    tags: Sequence[str] = ()
    kind: str = "folder"


@dataclass(frozen=True)
class SourceSummary:
    source: DataSource
    files: int
    last_job: SyncJob | None


async def add_source(session: AsyncSession, new: NewSource) -> DataSource:
    """The source's row, after every check a user's input can fail."""
    name = new.name.strip()
    if not name:
        raise SourceError("a data source needs a name")
    if len(name) > MAX_NAME_CHARS:
        raise SourceError(f"the name is {len(name)} characters long; at most {MAX_NAME_CHARS}")
    if new.kind != "folder":
        raise SourceError(f"data sources of kind {new.kind!r} are not supported (only folder)")
    if not new.location.is_dir():
        raise SourceError(f"the folder {new.location} does not exist or is not a folder")
    if new.scope not in SOURCE_SCOPES:
        raise SourceError(f"scope must be department or company, not {new.scope!r}")
    if new.classification not in CLASSIFICATIONS:
        raise SourceError(
            f"classification must be one of {', '.join(CLASSIFICATIONS)}, "
            f"not {new.classification!r}"
        )
    department_id = await _department_id(session, new.scope, new.department_code)
    if await session.scalar(select(DataSource.id).where(DataSource.name == name)):
        raise SourceError(f"a data source named {name!r} exists already")
    source = DataSource(
        name=name,
        kind=new.kind,
        location=str(new.location.resolve()),
        owner_id=new.owner_id,
        scope=new.scope,
        department_id=department_id,
        classification=new.classification,
        tags=clean_tags(new.tags),
    )
    session.add(source)
    try:
        await session.commit()
    except IntegrityError as error:  # the same name, added a moment ago
        await session.rollback()
        raise SourceError(f"a data source named {name!r} exists already") from error
    return source


async def _department_id(session: AsyncSession, scope: str, code: str | None) -> uuid.UUID | None:
    if scope == "company":
        if code:
            raise SourceError("a company source is read by everyone: give no --department")
        return None
    if not code:
        raise SourceError("a department source needs --department CODE")
    try:
        return (await users.get_department(session, code)).id
    except users.AccountError as error:
        raise SourceError(str(error)) from error


def clean_tags(tags: Sequence[str]) -> list[str]:
    """Tags as stored: trimmed, no empty ones, each once, in the order given."""
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))


async def get_source(session: AsyncSession, name: str) -> DataSource:
    source = await session.scalar(select(DataSource).where(DataSource.name == name))
    if source is None:
        names = (await session.scalars(select(DataSource.name).order_by(DataSource.name))).all()
        raise SourceError(f"no data source named {name!r} (sources: {', '.join(names) or 'none'})")
    return source


async def list_sources(session: AsyncSession) -> list[SourceSummary]:
    """Every source with its number of files and its latest job."""
    sources = (await session.scalars(select(DataSource).order_by(DataSource.name))).all()
    summaries = []
    for source in sources:
        files = len(
            (await session.scalars(select(File.id).where(File.source_id == source.id))).all()
        )
        last_job = await session.scalar(
            select(SyncJob)
            .where(SyncJob.source_id == source.id)
            .order_by(SyncJob.started_at.desc())
            .limit(1)
        )
        summaries.append(SourceSummary(source, files, last_job))
    return summaries


async def remove_source(kb: KnowledgeBase, name: str, *, trigger: str = "cli") -> int:
    """Remove the source's files from both indexes and the database, then the source;
    the number of files removed. Refused while it syncs: the removal holds the same claim
    as a sync (a running job, deleted with the source). A failure leaves the source
    listed, to remove again."""
    async with kb.sessions() as session:
        source = await get_source(session, name)
        file_ids = (await session.scalars(select(File.id).where(File.source_id == source.id))).all()
    try:
        job_id = await claim_source(kb, source.id, full=False, trigger=trigger)
    except SyncAlreadyRunning as error:
        message = f"{name} is being synced; remove it once that is done ({error})"
        raise SourceError(message) from None
    try:
        for file_id in file_ids:
            await delete_file(kb, file_id)
    except Exception as error:
        failure = {"path": "", "error": f"removing the source failed: {error}"}
        await finish_job(kb, job_id, "failed", Counts(), [failure])
        raise
    async with kb.sessions() as session:
        await session.delete(await session.get_one(DataSource, source.id))
        await session.commit()
    return len(file_ids)
