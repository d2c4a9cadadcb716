"""Ingestion as four overlapping stages, so the embedding model never waits for the rest.

    read (parser worker) -> chunk (page slices) -> embed (batches) -> write (database, indexes)

Each stage is an asyncio task joined to the next by a bounded queue; the blocking work of
each (the parser subprocess, the splitter, the model, the embedded engines) runs in a
thread, and torch and onnxruntime release the GIL while they compute. So the next file is
read and its first pages chunked while this one is embedded, and batch k's chunk rows are
written while batch k+1 is embedded. A large file streams: its pages are chunked a slice
at a time and its chunks embedded and stored batch by batch, never all chunked first.

What each file goes through is unchanged (`copilot.knowledge.ingest`): a file row moves
processing -> ready or failed, ids come from `chunk_uuid(file_id, ordinal)` with ordinals
in page order, and a file reaches the indexes only once all its chunks are embedded, in
one write per index, so search never sees half a file. Files that finish while the writer
is busy are written together (one commit per index for all of them); if such a write
fails, each file is taken back out and tried alone, so one file's failure is only its
own. Any failure of a file removes whatever of it reached the database or an index
(`_compensate`) and marks it failed; the other files go on.

`StageClock` adds up the seconds each stage spends working, which `copilot bench ingest`
prints next to the wall time: their sum exceeds the wall time by what overlapped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sqlalchemy import delete

from copilot.db.models import Chunk, File
from copilot.db.types import utcnow
from copilot.knowledge.chunking import ChunkDraft
from copilot.knowledge.ingest import (
    ClaimedFile,
    IndexingFailed,
    IngestRequest,
    IngestResult,
    Ownership,
    _compensate,
    _indexed_chunks,
    _mark_failed,
    _report,
    _store_original,
    _unheard,
    chunk_rows,
    claim_file,
    new_error_id,
    record_first_version,
)
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.loaders import (
    LoadedDocument,
    ParseLimits,
    UnreadableFile,
    load_document_isolated,
)
from copilot.search.base import IndexedChunk, KeywordIndex, VectorIndex

log = logging.getLogger(__name__)
A = TypeVar("A")
R = TypeVar("R")

#: Pages chunked per step: small enough that embedding starts early, large enough that a
#: step is not mostly overhead.
PAGES_PER_SLICE = 16
#: Chunks written to the indexes in one call at most, across the files waiting to be written.
INDEX_BATCH_CHUNKS = 4096
#: How far a stage may run ahead of the next, in items (a parsed file, a batch of chunks).
READ_AHEAD_FILES = 1
QUEUED_BATCHES = 4
# The chunker counts tokens with the embedding model's own tokenizer, and a Hugging Face
# fast tokenizer is not safe to share between threads (a call sets its padding and
# truncation, so a count beside a batch broke the batch: "expected sequence of length
# 151"). Chunking and embedding therefore take turns; parsing, database and index writes
# still overlap them, and chunking is a few percent of torch's embedding time. A provider
# whose token counts may run beside its batches (a `tokenizers.Tokenizer` configured once)
# says so with a true `counts_tokens_concurrently` attribute, and the two then overlap.
_TOKENIZER = threading.Lock()
CONCURRENT_COUNTS = "counts_tokens_concurrently"


def tokenizer_turn(kb: KnowledgeBase) -> AbstractContextManager[object]:
    """Held while chunking or embedding, by this pipeline and anything else that does
    either (a data source's sync), unless the provider says its counts may overlap."""
    may_overlap = getattr(kb.embeddings, CONCURRENT_COUNTS, False)
    return nullcontext() if may_overlap else _TOKENIZER


class StageClock:
    """Seconds each stage spent working, summed over files (stages overlap in time)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()  # worker threads add their own

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    @asynccontextmanager
    async def timing(self, stage: str) -> AsyncIterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)


@dataclass(eq=False)
class _Job:
    """One claimed file on its way through the stages."""

    position: int  # in the caller's list: results come back in its order
    request: IngestRequest
    claim: ClaimedFile
    document: LoadedDocument
    chunked: int = 0  # chunks cut so far
    embedded: int = 0
    indexed: list[IndexedChunk] = field(default_factory=list)
    finished: bool = False  # its outcome is decided: later stages skip its work

    @property
    def file_id(self) -> uuid.UUID:
        return self.claim.file_id


@dataclass(frozen=True)
class _Drafts:
    job: _Job
    drafts: list[ChunkDraft]


@dataclass(frozen=True)
class _Vectors:
    job: _Job
    drafts: list[ChunkDraft]
    vectors: list[list[float]]


@dataclass(frozen=True)
class _End:
    """Every chunk of the job has been sent on."""

    job: _Job


@dataclass(frozen=True)
class _Failed:
    job: _Job
    error: Exception


_Event = _Job | _Drafts | _Vectors | _End | _Failed
#: Told each file's position in the request list and its result, as soon as it is known.
OnResult = Callable[[int, IngestResult], None]


async def run_pipeline(
    kb: KnowledgeBase,
    requests: Sequence[IngestRequest],
    ownership: Ownership,
    *,
    clock: StageClock | None = None,
    on_result: OnResult = _unheard,
) -> list[IngestResult]:
    """Ingest `requests` through the overlapping stages; one result per request, in order.

    `on_result(position, result)` hears of each file as soon as its outcome is known."""
    pipeline = _Pipeline(kb, ownership, clock or StageClock(), len(requests), on_result)
    parsed: asyncio.Queue[_Job | None] = asyncio.Queue(READ_AHEAD_FILES)
    chunked: asyncio.Queue[_Event | None] = asyncio.Queue(QUEUED_BATCHES)
    embedded: asyncio.Queue[_Event | None] = asyncio.Queue(QUEUED_BATCHES)
    try:
        async with asyncio.TaskGroup() as stages:
            stages.create_task(pipeline.read(requests, parsed))
            stages.create_task(pipeline.chunk(parsed, chunked))
            stages.create_task(pipeline.embed(chunked, embedded))
            stages.create_task(pipeline.write(embedded))
    except ExceptionGroup as group:
        # A failure that is no one file's (the database is down): raised as itself, as
        # `ingest_file` always raised it, not wrapped in a group.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    return pipeline.outcomes()


class _Pipeline:
    def __init__(
        self,
        kb: KnowledgeBase,
        ownership: Ownership,
        clock: StageClock,
        count: int,
        on_result: OnResult,
    ) -> None:
        self.kb = kb
        self.on_result = on_result
        self.ownership = ownership
        self.clock = clock
        self.results: list[IngestResult | None] = [None] * count

    def _taking_turns(self, stage: str, work: Callable[[A], R], argument: A) -> R:
        """Run the chunker's or the model's `work`, one at a time unless they may overlap;
        timed once it runs (waiting for the other is not working)."""
        with tokenizer_turn(self.kb):
            start = time.perf_counter()
            try:
                return work(argument)
            finally:
                self.clock.add(stage, time.perf_counter() - start)

    def _decide(self, position: int, result: IngestResult) -> None:
        self.results[position] = result
        self.on_result(position, result)

    def outcomes(self) -> list[IngestResult]:
        missing = [i for i, r in enumerate(self.results) if r is None]
        if missing:  # a stage ended without deciding them: a bug, never a silent loss
            raise RuntimeError(f"the ingestion pipeline lost requests {missing}")
        return [r for r in self.results if r is not None]

    # --- read ------------------------------------------------------------------------------

    async def read(
        self, requests: Sequence[IngestRequest], out: asyncio.Queue[_Job | None]
    ) -> None:
        """Claim each file row (in order, so duplicates resolve as one by one) and parse it."""
        for position, request in enumerate(requests):
            async with self.clock.timing("claim"):
                claimed = await claim_file(
                    self.kb,
                    request.path,
                    self.ownership,
                    filename=request.filename,
                    status="processing",
                )
            if isinstance(claimed, IngestResult):
                self._decide(position, claimed)
                continue
            max_bytes = self.kb.settings.max_upload_mb * 2**20
            claim = ClaimedFile(
                claimed.id,
                claimed.original_name,
                request.path,
                max_bytes,
                tuple(claimed.tags or ()),
            )
            try:
                document = await self._parse(request, claim)
            except Exception as error:
                self._decide(position, await self._fail(claim, error))
                continue
            await out.put(_Job(position, request, claim, document))
        await out.put(None)  # not when failing: the other stages are cancelled

    async def _parse(self, request: IngestRequest, claim: ClaimedFile) -> LoadedDocument:
        settings = self.kb.settings
        await _tell(request, "parsing", 0, 1)
        limits = ParseLimits(settings.parse_timeout_seconds, settings.parse_memory_mb)
        async with self.clock.timing("parse"):
            document = await asyncio.to_thread(
                load_document_isolated,
                claim.path,
                filename=claim.name,
                max_bytes=claim.max_bytes,
                limits=limits,
            )
        pages = document.page_count or 1
        await _tell(request, "parsing", pages, pages)
        return document

    # --- chunk -----------------------------------------------------------------------------

    async def chunk(
        self, parsed: asyncio.Queue[_Job | None], out: asyncio.Queue[_Event | None]
    ) -> None:
        """Cut each file's pages a slice at a time into batches of the embedding's size."""
        batch_size = self.kb.settings.embedding_batch_size
        while (job := await parsed.get()) is not None:
            await out.put(job)
            pages = job.document.pages
            pending: list[ChunkDraft] = []
            try:
                for start in range(0, len(pages), PAGES_PER_SLICE):
                    if job.finished:
                        break
                    piece = pages[start : start + PAGES_PER_SLICE]
                    drafts = await asyncio.to_thread(
                        self._taking_turns, "chunk", self.kb.chunker.split, piece
                    )
                    # Each page is split on its own, so slices number on from each other.
                    pending += [replace(d, ordinal=job.chunked + i) for i, d in enumerate(drafts)]
                    job.chunked += len(drafts)
                    done = min(start + PAGES_PER_SLICE, len(pages))
                    await _tell(job.request, "chunking", done, len(pages))
                    while len(pending) >= batch_size:
                        await out.put(_Drafts(job, pending[:batch_size]))
                        pending = pending[batch_size:]
                if pending:
                    await out.put(_Drafts(job, pending))
                await out.put(_End(job))
            except Exception as error:
                await out.put(_Failed(job, error))
        await out.put(None)

    # --- embed -----------------------------------------------------------------------------

    async def embed(
        self, chunked: asyncio.Queue[_Event | None], out: asyncio.Queue[_Event | None]
    ) -> None:
        while (event := await chunked.get()) is not None:
            if not isinstance(event, _Drafts):
                await out.put(event)
                continue
            job = event.job
            if job.finished:
                continue
            texts = [d.text for d in event.drafts]
            try:
                vectors = await asyncio.to_thread(
                    self._taking_turns, "embed", self.kb.embeddings.embed_documents, texts
                )
            except Exception as error:
                await out.put(_Failed(job, error))
                job.finished = True  # its remaining batches are not worth embedding
                continue
            job.embedded += len(texts)
            await _tell(job.request, "embedding", job.embedded, job.chunked)
            await out.put(_Vectors(job, event.drafts, vectors))
        await out.put(None)

    # --- write -----------------------------------------------------------------------------

    async def write(self, embedded: asyncio.Queue[_Event | None]) -> None:
        """Store each batch's chunk rows; index finished files, together while events wait."""
        waiting: list[_Job] = []  # every chunk embedded and stored; not yet in the indexes
        while (event := await embedded.get()) is not None:
            job = event if isinstance(event, _Job) else event.job
            if isinstance(event, _Failed):
                await self._settle_failure(job, event.error)
            elif job.finished:
                continue  # failed earlier: what is still in flight of it is dropped
            elif isinstance(event, _Job):
                await self._guard(job, self._clear_rows(job))
            elif isinstance(event, _Vectors):
                await self._guard(job, self._store_batch(event))
            elif isinstance(event, _End):
                waiting.append(job)
                if embedded.empty() or sum(len(j.indexed) for j in waiting) >= INDEX_BATCH_CHUNKS:
                    await self._index(waiting)
                    waiting = []
        if waiting:
            await self._index(waiting)

    async def _guard(self, job: _Job, step: Awaitable[None]) -> None:
        try:
            await step
        except Exception as error:
            await self._settle_failure(job, error)

    async def _clear_rows(self, job: _Job) -> None:
        """A file tried again after a failure starts from no chunks."""
        async with self.clock.timing("database"), self.kb.sessions() as session:
            await session.execute(delete(Chunk).where(Chunk.file_id == job.file_id))
            await session.commit()

    async def _store_batch(self, event: _Vectors) -> None:
        job, drafts = event.job, event.drafts
        async with self.clock.timing("database"), self.kb.sessions() as session:
            session.add_all(chunk_rows(job.file_id, drafts))
            await session.commit()
        job.indexed += _indexed_chunks(
            job.file_id, job.claim.name, self.ownership, drafts, event.vectors, tags=job.claim.tags
        )

    async def _index(self, jobs: list[_Job]) -> None:
        """Both indexes in one write for all `jobs`; on failure, each alone again."""
        chunks = [chunk for job in jobs for chunk in job.indexed]
        try:
            await self._add_to_indexes(jobs, chunks)
        except _IndexRefused as refused:
            if len(jobs) == 1:
                await self._settle_failure(jobs[0], refused.failure)
                return
            for job in jobs:
                await self._remove_from_indexes(job)
            for job in jobs:
                await self._index([job])
            return
        for job in jobs:
            await self._guard(job, self._mark_ready(job))

    async def _add_to_indexes(self, jobs: list[_Job], chunks: list[IndexedChunk]) -> None:
        indexes: tuple[KeywordIndex | VectorIndex, ...] = (
            self.kb.indexes.keyword,
            self.kb.indexes.vector,
        )
        for step, index in enumerate(indexes, 1):
            try:
                async with self.clock.timing("index"):
                    if chunks:  # a file of no chunks still becomes ready
                        await index.add(chunks)
                        await self.kb.indexes_changed()
            except Exception as error:
                await self.kb.indexes_changed()  # a failed write may have written some
                error_id = new_error_id()
                log.exception(
                    "the %s index refused the chunks of files %s: error id %s",
                    index.name,
                    ", ".join(str(job.file_id) for job in jobs),
                    error_id,
                )
                raise _IndexRefused(
                    IndexingFailed(
                        f"the {index.name} index could not store it (error id {error_id}); "
                        "try again later."
                    )
                ) from error
            for job in jobs:
                await _tell(job.request, "indexing", step, 2)

    async def _remove_from_indexes(self, job: _Job) -> None:
        for index in (self.kb.indexes.keyword, self.kb.indexes.vector):
            try:
                await index.delete_file(str(job.file_id))
            except Exception:
                log.exception("could not remove file %s from the %s index", job.file_id, index.name)
        await self.kb.indexes_changed()

    async def _mark_ready(self, job: _Job) -> None:
        claim, document = job.claim, job.document
        async with self.clock.timing("store"):
            stored = await asyncio.to_thread(
                _store_original, self.kb, claim.file_id, claim.name, claim.path
            )
        async with self.clock.timing("database"), self.kb.sessions() as session:
            file = await session.get_one(File, claim.file_id)
            file.status, file.error = "ready", None
            file.mime_type = document.mime_type  # what the content is, not what the name says
            file.page_count = document.page_count
            file.chunk_count = job.chunked
            file.storage_path = str(stored)
            file.indexed_at = utcnow()
            await record_first_version(session, file)
            await session.commit()
        job.finished = True
        self._decide(
            job.position,
            IngestResult(
                str(claim.file_id), claim.name, "indexed", document.page_count, job.chunked
            ),
        )

    async def _settle_failure(self, job: _Job, error: Exception) -> None:
        if self.results[job.position] is not None:
            return  # already decided (a late event of a failed job)
        job.finished = True
        self._decide(job.position, await self._fail(job.claim, error))

    async def _fail(self, claim: ClaimedFile, error: Exception) -> IngestResult:
        """Take the file back out of everything and say why, as `ingest_file` always has."""
        if isinstance(error, UnreadableFile | IndexingFailed):
            message = str(error)
        else:
            # The detail (class, message, traceback) is for the log; the user gets its id.
            error_id = new_error_id()
            log.error(
                "ingesting %r (file %s) failed: error id %s",
                claim.name,
                claim.file_id,
                error_id,
                exc_info=error,
            )
            message = f'"{claim.name}" could not be read (error id {error_id}); try again later.'
        await _compensate(self.kb, str(claim.file_id))
        await _mark_failed(self.kb, claim.file_id, message)
        return IngestResult(str(claim.file_id), claim.name, "failed", error=message)


async def _tell(request: IngestRequest, stage: str, done: int, total: int) -> None:
    """Progress for whoever watches; a watcher's failure (a closed chat) is not the file's."""
    try:
        await _report(request.on_progress, stage, done, total)
    except Exception:
        log.warning("the progress report of %s failed", request.path.name, exc_info=True)


class _IndexRefused(Exception):
    """An index write failed; carries the user-facing IndexingFailed."""

    def __init__(self, failure: IndexingFailed) -> None:
        super().__init__(str(failure))
        self.failure = failure
