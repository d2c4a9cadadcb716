"""One sync of a data source: the knowledge base brought in step with what the source holds.

Incremental: an entry whose modification time and size match its file's is unchanged
without being read; otherwise its sha256 decides. New entries are ingested with the
source's scope, department, classification and owner, tagged with the source's tags and
their folders; changed ones become the next version of the same file row, switched to
atomically (`copilot.knowledge.versions`); files gone from the source leave both indexes
and the database (pruning), after the additions, so a renamed file (a delete and an add)
always answers under one name or the other. `full` reads every entry's bytes whatever its
time says. A file that fails is recorded (in the job's errors and on the file) and the job
goes on; a file not ready (failed, or left processing by a crash) is tried again.

Two syncs of one source never run at once: the claim takes the source's row lock (an
UPDATE: a row lock on PostgreSQL, the write lock on SQLite), then looks for a running job.
One whose claimant process is gone (or whose heartbeat stopped) was interrupted: it is
marked failed and this sync repairs what it left (chunks in an index that no row names,
files left processing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from copilot.db.models import DataSource, File, SyncJob
from copilot.db.types import utcnow
from copilot.knowledge.claimant import Claimant, claimed_progress, this_process
from copilot.knowledge.ingest import (
    IndexingFailed,
    delete_file,
    display_name,
    file_sha256,
    new_error_id,
    size_refusal,
)
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.loaders import UnreadableFile
from copilot.knowledge.sources.connector import (
    Connector,
    Entry,
    SourceUnavailable,
    connector_for,
)
from copilot.knowledge.versions import Content, clear_leftovers, index_version

log = logging.getLogger(__name__)

#: How often a running sync shows it is alive (and writes its counts so far).
HEARTBEAT_SECONDS = 5.0
#: A running job whose heartbeat is older than this was interrupted (on another host,
#: where its process cannot be looked at).
STALE_SECONDS = 120.0
INTERRUPTED = "the sync was interrupted (its process stopped); the next sync repaired it"


class SyncAlreadyRunning(RuntimeError):
    """A sync of this source is running; the message says since when and where."""


@dataclass
class Counts:
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0

    def as_values(self) -> dict[str, int]:
        return dict(vars(self))


async def sync_source(
    kb: KnowledgeBase, source_id: uuid.UUID, *, full: bool = False, trigger: str = "cli"
) -> SyncJob:
    """Run one sync of the source now and return its finished job row.

    Raises SyncAlreadyRunning when another sync of it runs, LookupError when there is no
    such source. A source that cannot be listed ends the job failed, with nothing pruned.
    """
    job_id = await claim_source(kb, source_id, full=full, trigger=trigger)
    counts, errors = Counts(), list[dict[str, str]]()
    async with _heartbeat(kb, job_id, counts):
        try:
            async with kb.sessions() as session:
                source = await session.get_one(DataSource, source_id)
            await _run(kb, source, connector_for(source), full, counts, errors)
            status = "partial" if counts.failed else "succeeded"
        except SourceUnavailable as error:
            errors.append({"path": "", "error": str(error)})
            status = "failed"
        except BaseException as error:
            error_id = new_error_id()
            log.error("sync of source %s failed: error id %s", source_id, error_id, exc_info=error)
            errors.append({"path": "", "error": f"the sync stopped (error id {error_id})"})
            await finish_job(kb, job_id, "failed", counts, errors)
            raise
    return await finish_job(kb, job_id, status, counts, errors)


async def claim_source(
    kb: KnowledgeBase, source_id: uuid.UUID, *, full: bool, trigger: str
) -> uuid.UUID:
    """The new job's id, or SyncAlreadyRunning: a compare-and-set under the source's lock."""
    now = utcnow()
    async with kb.sessions() as session:
        locked = await session.execute(
            update(DataSource).where(DataSource.id == source_id).values(updated_at=now)
        )
        if locked.rowcount != 1:  # type: ignore[attr-defined]
            raise LookupError(f"no data source with id {source_id}")
        running = (
            await session.scalars(
                select(SyncJob).where(SyncJob.source_id == source_id, SyncJob.status == "running")
            )
        ).all()
        for job in running:
            if not _interrupted(job):
                refusal = SyncAlreadyRunning(
                    f"a sync of this source is running already (started "
                    f"{job.started_at:%Y-%m-%d %H:%M:%S} UTC by {_describe(job.claimant)}); "
                    "wait for it to finish"
                )
                await session.rollback()  # releases the source's lock
                raise refusal
            log.warning("sync job %s was interrupted: marked failed, repairing", job.id)
            job.status, job.finished_at = "failed", now
            job.errors = [*job.errors, {"path": "", "error": INTERRUPTED}]
        job = SyncJob(
            source_id=source_id,
            status="running",
            full=full,
            trigger=trigger,
            started_at=now,
            heartbeat_at=now,
            claimant=json.dumps(this_process().as_json()),
            errors=[],
        )
        session.add(job)
        await session.commit()
        return job.id


def _interrupted(job: SyncJob) -> bool:
    claimant = _claimant_of(job.claimant)
    if claimant is not None and claimant.is_gone():
        return True
    beat = job.heartbeat_at or job.started_at
    return beat < utcnow() - timedelta(seconds=STALE_SECONDS)


def _claimant_of(raw: str | None) -> Claimant | None:
    try:
        return Claimant.from_progress({"claimant": json.loads(raw or "null")})
    except ValueError:
        return None


def _describe(raw: str | None) -> str:
    claimant = _claimant_of(raw)
    return f"process {claimant.pid} on {claimant.host}" if claimant else "another process"


@contextlib.asynccontextmanager
async def _heartbeat(kb: KnowledgeBase, job_id: uuid.UUID, counts: Counts) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                async with kb.sessions() as session:
                    await session.execute(
                        update(SyncJob)
                        .where(SyncJob.id == job_id)
                        .values(heartbeat_at=utcnow(), **counts.as_values())
                    )
                    await session.commit()
            except Exception:
                log.warning("the heartbeat of sync job %s failed", job_id, exc_info=True)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def finish_job(
    kb: KnowledgeBase,
    job_id: uuid.UUID,
    status: str,
    counts: Counts,
    errors: list[dict[str, str]],
) -> SyncJob:
    now = utcnow()
    async with kb.sessions() as session:
        job = await session.get_one(SyncJob, job_id)
        job.status, job.finished_at, job.heartbeat_at = status, now, now
        job.errors = errors
        for name, value in counts.as_values().items():
            setattr(job, name, value)
        if status != "failed":
            source = await session.get_one(DataSource, job.source_id)
            source.last_synced_at = now
        await session.commit()
        return job


async def _run(
    kb: KnowledgeBase,
    source: DataSource,
    connector: Connector,
    full: bool,
    counts: Counts,
    errors: list[dict[str, str]],
) -> None:
    entries = await asyncio.to_thread(connector.entries)
    async with kb.sessions() as session:
        files = {
            f.source_path: f
            for f in (await session.scalars(select(File).where(File.source_id == source.id)))
        }
    if not entries and files and not full:
        # An unmounted share often leaves its mount point behind, empty.
        raise SourceUnavailable(
            f"{source.location} lists no files, but {len(files)} were synced from it (is the "
            "share mounted?); nothing was removed: sync with --full to remove them all"
        )
    for known in files.values():  # what an interrupted sync left in the indexes
        if (known.progress or {}).get("leftovers"):
            await clear_leftovers(kb, known)
    listed = {entry.path for entry in entries}
    for entry in entries:
        file = files.get(entry.path)
        try:
            outcome = await _sync_entry(kb, source, connector, entry, file, full)
        except Exception as error:
            counts.failed += 1
            message = _message(entry, error)
            errors.append({"path": entry.path, "error": message})
            await _record_failure(kb, entry, file, source, message)
            continue
        setattr(counts, outcome, getattr(counts, outcome) + 1)
    for path, gone in files.items():
        if path in listed:
            continue
        try:
            await delete_file(kb, gone.id)
        except Exception as error:  # an index away: the file stays, the next sync retries
            counts.failed += 1
            errors.append({"path": path or "", "error": _removal_failed(path or "", error)})
            continue
        counts.deleted += 1


async def _sync_entry(
    kb: KnowledgeBase,
    source: DataSource,
    connector: Connector,
    entry: Entry,
    file: File | None,
    full: bool,
) -> str:
    """What became of one entry: "added", "updated" or "unchanged"."""
    ready = file is not None and file.status == "ready"
    if (
        ready
        and not full
        and file is not None
        and file.size_bytes == entry.size_bytes
        and file.source_modified_at == entry.modified_at
    ):
        return "unchanged"
    with connector.local_copy(entry.path) as path:
        _check_size(kb, entry, path)
        sha256 = await asyncio.to_thread(file_sha256, path)
        tags = [*source.tags, *entry.folders]
        if file is not None and ready and file.sha256 == sha256:
            await _set(kb, file.id, source_modified_at=entry.modified_at, tags=tags)
            return "unchanged"
        if file is None:
            file_id = await _new_file(kb, source, entry, sha256, tags)
        else:
            file_id = file.id
            await _set(kb, file_id, tags=tags, **({} if ready else {"status": "processing"}))
        content = Content(path, sha256, entry.size_bytes, entry.modified_at)
        await index_version(kb, file_id, content)
    return "updated" if ready else "added"


def _check_size(kb: KnowledgeBase, entry: Entry, path: Path) -> None:
    refusal = size_refusal(entry.path, path.stat().st_size, kb.settings.max_upload_mb)
    if refusal is not None:
        raise refusal


async def _new_file(
    kb: KnowledgeBase, source: DataSource, entry: Entry, sha256: str, tags: list[str]
) -> uuid.UUID:
    name = display_name(entry.path)
    file = File(
        owner_id=source.owner_id,
        original_name=name,
        mime_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        size_bytes=entry.size_bytes,
        sha256=sha256,
        scope=source.scope,
        department_id=source.department_id,
        classification=source.classification,
        status="processing",
        progress=claimed_progress(),
        tags=tags,
        source_id=source.id,
        source_path=entry.path,
    )
    async with kb.sessions() as session:
        session.add(file)
        await session.commit()
        return file.id


async def _record_failure(
    kb: KnowledgeBase, entry: Entry, file: File | None, source: DataSource, message: str
) -> None:
    """The error on the file too: a new or never-ready file is failed; a ready one keeps
    answering with its current version and shows why the new one is not in."""
    async with kb.sessions() as session:
        row = await session.scalar(
            select(File).where(File.source_id == source.id, File.source_path == entry.path)
        )
        if row is None:
            return  # refused before it had a row (empty, too large)
        row.error = message
        if row.status != "ready":
            row.status, row.chunk_count, row.progress = "failed", 0, None
        await session.commit()


def _message(entry: Entry, error: Exception) -> str:
    if isinstance(error, UnreadableFile | IndexingFailed):
        return str(error)
    error_id = new_error_id()
    log.error("syncing %r failed: error id %s", entry.path, error_id, exc_info=error)
    return f'"{entry.path}" could not be read (error id {error_id}); try again later.'


def _removal_failed(path: str, error: Exception) -> str:
    error_id = new_error_id()
    log.error(
        "removing %r (gone from its source) failed: error id %s", path, error_id, exc_info=error
    )
    return f'"{path}" is gone from the source but could not be removed (error id {error_id})'


async def _set(kb: KnowledgeBase, file_id: uuid.UUID, **values: Any) -> None:
    async with kb.sessions() as session:
        await session.execute(update(File).where(File.id == file_id).values(**values))
        await session.commit()
