"""Ingestion in the background: a durable queue whose state is `files.status`.

An upload is *admitted* first: its row is written as pending and its bytes are kept under
the data dir, so it survives a restart. Workers (an asyncio pool inside the process) take
pending files, run `ingest_file` on the kept original and record its progress in
`files.progress` about once a second; that write is also the heartbeat. Whoever watches
the file (every chat of its owner, `copilot ingest`'s progress bar) reads the row, so it
works across chats, processes and replicas.

A file left processing by a crash has a claimant that is gone (a process of this host that
ended: seen at once, see `copilot.knowledge.claimant`) or a heartbeat that stopped (any
other host): `recover_interrupted` takes out whatever reached the database and the
indexes for it, then queues it again from its kept original, or marks it failed saying
why when there is none. Claims are compare-and-set on the status (see `claim_file`), so
two processes never run one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from copilot.db.models import File
from copilot.db.types import utcnow
from copilot.knowledge.claimant import Claimant, claimed_progress
from copilot.knowledge.ingest import (
    IngestResult,
    Ownership,
    _compensate,
    _store_original,
    claim_file,
    ingest_file,
)
from copilot.knowledge.knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)

#: How often a running ingestion writes its progress (and so shows it is alive).
HEARTBEAT_SECONDS = 1.0
#: A processing file whose heartbeat is older than this was interrupted (crash, kill).
#: Well above the heartbeat, so a busy machine never has a running file taken over.
STALE_SECONDS = 30.0
#: How often a running queue looks for interrupted and waiting files.
SWEEP_SECONDS = 10.0
IN_PROGRESS = ("pending", "processing")
INTERRUPTED = (
    "its ingestion was interrupted (the app stopped or crashed) and its upload was not kept; "
    "please upload it again."
)

# Where each stage's progress sits in the whole (embedding is most of the time).
_STAGE_SPAN = {
    "queued": (0, 0),
    "parsing": (0, 10),
    "chunking": (10, 15),
    "embedding": (15, 90),
    "indexing": (90, 100),
}
_STAGE_RANK = {stage: rank for rank, stage in enumerate(_STAGE_SPAN)}


@dataclass(frozen=True)
class IngestProgress:
    """Where an ingestion is: its stage, items done of total, pages and chunks so far."""

    stage: str = "queued"
    done: int = 0
    total: int = 0
    pages: int | None = None
    chunks: int | None = None
    reached: int = 0  # the highest percent shown so far: it never goes back

    @property
    def percent(self) -> int:
        low, high = _STAGE_SPAN.get(self.stage, (0, 100))
        share = self.done / self.total if self.total else 0.0
        return max(self.reached, round(low + (high - low) * min(1.0, share)))

    def after(self, stage: str, done: int, total: int) -> IngestProgress:
        """This progress moved on by one `ingest_file` report (see ingest.Progress).

        The pipeline's stages overlap (pages are chunked while earlier chunks embed, and
        the chunk total grows meanwhile), so a report of an earlier stage than the one
        shown moves nothing back, and the percent shown never falls."""
        pages = total if stage == "parsing" and done == total and done else self.pages
        chunks = total if stage == "embedding" else self.chunks
        if _STAGE_RANK.get(stage, len(_STAGE_RANK)) < _STAGE_RANK.get(self.stage, 0):
            return replace(self, pages=pages, chunks=chunks)
        # A stage done is the next one started (whose first report comes only later).
        if stage == "parsing" and done == total and done:
            stage, done, total = "chunking", 0, 0
        elif stage == "chunking" and done == total:
            stage, done = "embedding", 0
        return IngestProgress(stage, done, total, pages, chunks, self.percent)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}

    @classmethod
    def of(cls, file: File) -> IngestProgress:
        raw = file.progress or {}
        return cls(
            str(raw.get("stage", "queued")),
            int(raw.get("done", 0)),
            int(raw.get("total", 0)),
            raw.get("pages"),
            raw.get("chunks"),
            int(raw.get("percent", 0)),
        )


async def admit(
    kb: KnowledgeBase, path: Path, ownership: Ownership, *, filename: str | None = None
) -> File | IngestResult:
    """Write the file's row as pending and keep its bytes; or why it is not queued."""
    claimed = await claim_file(kb, path, ownership, filename=filename, status="pending")
    if isinstance(claimed, IngestResult):
        return claimed
    try:
        stored = await asyncio.to_thread(
            _store_original, kb, claimed.id, claimed.original_name, path
        )
    except OSError as error:
        log.exception("could not keep the upload of file %s", claimed.id)
        await _set(kb, claimed.id, status="failed", error=f"it could not be saved ({error}).")
        return IngestResult(str(claimed.id), claimed.original_name, "failed", error=str(error))
    await _set(kb, claimed.id, storage_path=str(stored))
    claimed.storage_path = str(stored)
    return claimed


@dataclass(frozen=True)
class Recovered:
    """What start-up recovery found: files queued again, and files failed for good."""

    resumed: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)


async def recover_interrupted(kb: KnowledgeBase, stale_after: float = STALE_SECONDS) -> Recovered:
    """Put every file a crash left processing back in the queue, or fail it with a reason.

    A file counts as interrupted when its claimant (the process that claimed it, see
    copilot.knowledge.claimant) ran on this host and is gone, or else when its heartbeat
    stopped `stale_after` seconds ago: a file another live process is ingesting right now
    is left alone. What was written for an interrupted file (chunk rows, entries in both
    indexes) is removed before it is queued again.
    """
    cutoff = utcnow() - timedelta(seconds=stale_after)
    async with kb.sessions() as session:
        candidates = (
            await session.scalars(
                select(File).where(
                    File.status.in_(IN_PROGRESS),
                    (File.updated_at <= cutoff) | (File.status == "processing"),
                    File.source_id.is_(None),  # a data source's next sync repairs its own
                )
            )
        ).all()
    files = [f for f in candidates if _interrupted(f, cutoff)]
    recovered = Recovered()
    for file in files:
        kept = bool(file.storage_path) and Path(file.storage_path).is_file()
        if file.status == "pending" and kept:
            continue  # waiting its turn: the queue's sweep takes it
        if file.status == "processing":
            log.warning("file %s was interrupted while being ingested: cleaning up", file.id)
            await _compensate(kb, str(file.id))
        values: dict[str, Any] = {"status": "pending"}
        if not kept:
            values = {"status": "failed", "error": INTERRUPTED}
        async with kb.sessions() as session:
            # Compare-and-set: a process that claimed it meanwhile keeps it.
            changed = await session.execute(
                update(File)
                .where(File.id == file.id, File.status == file.status)
                .values(progress=None, chunk_count=0, updated_at=utcnow(), **values)
            )
            await session.commit()
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            (recovered.resumed if kept else recovered.failed).append(file.id)
    return recovered


def _interrupted(file: File, cutoff: datetime) -> bool:
    if file.updated_at <= cutoff:
        return True
    claimant = Claimant.from_progress(file.progress)
    return claimant is not None and claimant.is_gone()


class IngestionQueue:
    """A pool of `workers` asyncio tasks ingesting pending files, one file each at a time."""

    def __init__(
        self,
        kb: KnowledgeBase,
        workers: int = 1,
        *,
        stale_after: float = STALE_SECONDS,
        sweep_seconds: float | None = SWEEP_SECONDS,
    ) -> None:
        self.kb = kb
        self.workers = max(1, workers)
        self.stale_after = stale_after
        self.sweep_seconds = sweep_seconds
        self._waiting: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        self._queued: set[uuid.UUID] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Recovered:
        """Recover what a crash interrupted, queue every waiting file, start the workers."""
        recovered = await self._sweep()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        if self.sweep_seconds:
            self._tasks.append(asyncio.create_task(self._keep_sweeping(self.sweep_seconds)))
        return recovered

    async def submit(
        self, path: Path, ownership: Ownership, *, filename: str | None = None
    ) -> File | IngestResult:
        """Admit an upload (its bytes are copied, `path` may go) and queue it."""
        admitted = await admit(self.kb, path, ownership, filename=filename)
        if isinstance(admitted, File):
            self._enqueue(admitted.id)
        return admitted

    async def stop(self) -> None:
        """Stop the workers; a file being ingested goes back to pending, cleaned up."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # one worker's failure must not keep the others running
                log.exception("an ingestion worker failed while stopping")
        self._tasks = []

    def _enqueue(self, file_id: uuid.UUID) -> None:
        if file_id not in self._queued:
            self._queued.add(file_id)
            self._waiting.put_nowait(file_id)

    async def _sweep(self) -> Recovered:
        recovered = await recover_interrupted(self.kb, self.stale_after)
        async with self.kb.sessions() as session:
            waiting = (
                await session.scalars(
                    select(File.id).where(File.status == "pending").order_by(File.created_at)
                )
            ).all()
        for file_id in waiting:
            self._enqueue(file_id)
        return recovered

    async def _keep_sweeping(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self._sweep()
            except Exception:
                log.exception("looking for interrupted uploads failed")

    async def _work(self) -> None:
        while True:
            file_id = await self._waiting.get()
            try:
                await self._run(file_id)
            except Exception:
                log.exception("ingesting file %s failed outside the pipeline", file_id)
            finally:
                self._queued.discard(file_id)

    async def _run(self, file_id: uuid.UUID) -> None:
        async with self.kb.sessions() as session:
            file = await session.get(File, file_id)
        if file is None or file.status != "pending":
            return  # deleted, or taken by another process
        original = Path(file.storage_path) if file.storage_path else None
        if original is None or not original.is_file():
            return  # still being admitted, or lost: recovery fails it once it is stale
        ownership = Ownership(
            file.owner_id,
            file.scope,  # type: ignore[arg-type]
            file.department_id,
            file.classification,  # type: ignore[arg-type]
        )
        recorder = _Recorder(self.kb, file_id)
        heartbeat = asyncio.create_task(recorder.keep_writing())
        try:
            await ingest_file(
                self.kb, original, ownership, filename=file.original_name, on_progress=recorder
            )
        except asyncio.CancelledError:
            await asyncio.shield(_release(self.kb, file_id))
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        async with self.kb.sessions() as session:
            await session.execute(
                update(File)
                .where(File.id == file_id, File.status.not_in(IN_PROGRESS))
                .values(progress=None)
            )
            await session.commit()


class _Recorder:
    """Takes `ingest_file`'s reports and writes the latest to the row every heartbeat."""

    def __init__(self, kb: KnowledgeBase, file_id: uuid.UUID) -> None:
        self.kb, self.file_id = kb, file_id
        self.progress = IngestProgress("parsing")

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.progress = self.progress.after(stage, done, total)

    async def keep_writing(self) -> None:
        while True:
            try:
                async with self.kb.sessions() as session:
                    await session.execute(
                        update(File)
                        .where(File.id == self.file_id, File.status == "processing")
                        .values(
                            progress={**self.progress.as_json(), **claimed_progress()},
                            updated_at=utcnow(),
                        )
                    )
                    await session.commit()
            except Exception:
                log.exception("recording the progress of file %s failed", self.file_id)
            await asyncio.sleep(HEARTBEAT_SECONDS)


async def _release(kb: KnowledgeBase, file_id: uuid.UUID) -> None:
    """An ingestion stopped on purpose (shutdown): clean up and wait for the next start."""
    await _compensate(kb, str(file_id))
    async with kb.sessions() as session:
        await session.execute(
            update(File)
            .where(File.id == file_id, File.status == "processing")
            .values(status="pending", progress=None, chunk_count=0, updated_at=utcnow())
        )
        await session.commit()


async def _set(kb: KnowledgeBase, file_id: uuid.UUID, **values: Any) -> None:
    async with kb.sessions() as session:
        await session.execute(
            update(File).where(File.id == file_id).values(updated_at=utcnow(), **values)
        )
        await session.commit()


async def in_progress(kb: KnowledgeBase, owner_id: uuid.UUID) -> list[File]:
    """The owner's files waiting or being ingested, oldest first."""
    async with kb.sessions() as session:
        rows = await session.scalars(
            select(File)
            .where(File.owner_id == owner_id, File.status.in_(IN_PROGRESS))
            .order_by(File.created_at)
        )
        return list(rows.all())


async def watch(
    kb: KnowledgeBase,
    file_ids: Sequence[uuid.UUID],
    on_change: Callable[[list[File]], Awaitable[None] | None],
    *,
    interval: float = HEARTBEAT_SECONDS,
) -> list[File]:
    """Call `on_change` with the files' rows whenever they change, until none is in
    progress (a deleted file drops out); returns their last rows."""
    seen: object = None
    while True:
        async with kb.sessions() as session:
            rows = list(
                (
                    await session.scalars(
                        select(File).where(File.id.in_(file_ids)).order_by(File.created_at)
                    )
                ).all()
            )
        state = [(f.id, f.status, f.progress, f.error) for f in rows]
        if state != seen:
            seen = state
            outcome = on_change(rows)
            if asyncio.iscoroutine(outcome):
                await outcome
        if all(f.status not in IN_PROGRESS for f in rows):
            return rows
        await asyncio.sleep(interval)


def result_of(file: File) -> IngestResult:
    """What a finished file's row says, as `ingest_file` would have said it."""
    if file.status == "ready":
        return IngestResult(
            str(file.id), file.original_name, "indexed", file.page_count, file.chunk_count
        )
    return IngestResult(
        str(file.id), file.original_name, "failed", error=file.error or "it was not added"
    )
