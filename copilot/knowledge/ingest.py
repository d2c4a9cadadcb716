"""Files in and out of the knowledge base, keeping the database and both indexes in step.

PostgreSQL (or SQLite) is the truth: a file row moves pending -> processing -> ready, or
to failed with the reason stored. Chunks are written to the database first, then to the
keyword and the vector index; if either index write fails, whatever reached an index is
removed again (compensation), the chunks are dropped, and the error names the index. So a
failed upload never leaves a half-indexed file, and search never returns a chunk whose
file is not ready. The steps run as overlapping stages (`copilot.knowledge.pipeline`);
this module holds what each file goes through.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import mimetypes
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from sqlalchemy import delete, select, update

from copilot.db.models import Chunk, File
from copilot.knowledge.chunking import ChunkDraft
from copilot.knowledge.knowledge_base import KnowledgeBase, record_embedding_model
from copilot.knowledge.loaders import (
    EmptyFile,
    ParseLimits,
    TooLarge,
    UnreadableFile,
    load_document_isolated,
)
from copilot.search.base import IndexedChunk
from copilot.search.language import detect_language
from copilot.search.scope import ChunkAccess

log = logging.getLogger(__name__)

#: Longest file name kept (the column holds 500; names are shown in lists and messages).
MAX_NAME_CHARS = 200
_NAME_TAIL_CHARS = 40  # kept from the end of a shortened name: it holds the extension
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Bidirectional overrides make "invoice\u202efdp.exe" display as "invoiceexe.pdf".
_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")

#: stage name, items done, items in total ("parsing", "chunking", "embedding", "indexing");
#: may be a coroutine function (the chat UI updates a step with it).
Progress = Callable[[str, int, int], Awaitable[None] | None]


@dataclass(frozen=True)
class IngestResult:
    file_id: str
    name: str
    outcome: Literal["indexed", "duplicate", "failed"]
    pages: int | None = None
    chunks: int = 0
    error: str | None = None

    @property
    def summary(self) -> str:
        if self.outcome == "failed":
            return f"failed {self.name}: {self.error}"
        if self.outcome == "duplicate":
            return f"{self.name} is already in your knowledge (indexed earlier)"
        pages = f"{self.pages} pages, " if self.pages else ""
        return f"indexed {self.name}: {pages}{self.chunks} chunks"


FileScope = Literal["personal", "department", "company"]
Classification = Literal["public", "internal", "confidential", "secret"]


@dataclass(frozen=True)
class Ownership:
    """Who owns a file and who may read it."""

    owner_id: uuid.UUID
    scope: FileScope = "personal"
    department_id: uuid.UUID | None = None
    classification: Classification = "internal"

    def __post_init__(self) -> None:
        if self.scope == "department" and self.department_id is None:
            raise ValueError("department knowledge needs a department")

    @property
    def access(self) -> ChunkAccess:
        """What the file's chunks carry into the indexes (their tokens come from it)."""
        department = self.department_id
        return ChunkAccess(
            owner_id=str(self.owner_id),
            scope=self.scope,
            department_id=str(department) if department else None,
            classification=self.classification,
        )


def chunk_uuid(file_id: uuid.UUID, ordinal: int) -> uuid.UUID:
    """The same id in the database and in both indexes, derived so a rebuild keeps it."""
    return uuid.uuid5(file_id, str(ordinal))


async def _report(on_progress: Progress, stage: str, done: int, total: int) -> None:
    outcome = on_progress(stage, done, total)
    if inspect.isawaitable(outcome):
        await outcome


def _silent(stage: str, done: int, total: int) -> None:
    return None


def _unheard(position: int, result: IngestResult) -> None:
    return None


async def ingest_file(
    kb: KnowledgeBase,
    path: Path,
    ownership: Ownership,
    *,
    filename: str | None = None,
    on_progress: Progress = _silent,
) -> IngestResult:
    """Parse, chunk, embed and index one file; duplicates (same owner, same bytes) are skipped."""
    (result,) = await ingest_files(kb, [IngestRequest(path, filename, on_progress)], ownership)
    return result


async def ingest_files(
    kb: KnowledgeBase,
    requests: Sequence[IngestRequest],
    ownership: Ownership,
    *,
    on_result: Callable[[int, IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest several files with their stages overlapped (`copilot.knowledge.pipeline`):
    the next file is read while this one is embedded; results in the order of `requests`,
    each also given to `on_result(position, result)` as soon as it is known."""
    from copilot.knowledge.pipeline import run_pipeline  # it builds on this module

    return await run_pipeline(kb, requests, ownership, on_result=on_result or _unheard)


@dataclass(frozen=True)
class IngestRequest:
    """One file to ingest: where it is, the name the user knows, who hears of its progress."""

    path: Path
    filename: str | None = None
    on_progress: Progress = _silent


@dataclass(frozen=True)
class ClaimedFile:
    """A file row now `processing`, whose bytes are to be read, chunked and indexed."""

    file_id: uuid.UUID
    name: str
    path: Path
    max_bytes: int


async def claim_file(
    kb: KnowledgeBase, path: Path, ownership: Ownership, filename: str | None = None
) -> ClaimedFile | IngestResult:
    """The file row, marked processing; or the outcome already known (refused, duplicate)."""
    name = display_name(filename or path.name)
    max_bytes = kb.settings.max_upload_mb * 2**20
    size = path.stat().st_size
    # Refused before any row is written: there is nothing worth keeping of these.
    error: UnreadableFile
    if size == 0:
        error = EmptyFile(name, "is empty (0 bytes); there is no text to add.")
        return IngestResult("", name, "failed", error=str(error))
    if size > max_bytes:
        error = TooLarge(
            name, f"is {size / 2**20:.1f} MiB; the limit is {kb.settings.max_upload_mb} MiB."
        )
        return IngestResult("", name, "failed", error=str(error))
    data = await asyncio.to_thread(path.read_bytes)
    sha256 = hashlib.sha256(data).hexdigest()

    async with kb.sessions() as session:
        file = await session.scalar(
            select(File).where(File.owner_id == ownership.owner_id, File.sha256 == sha256)
        )
        if file is not None and file.status in ("ready", "processing"):
            return IngestResult(
                str(file.id), file.original_name, "duplicate", file.page_count, file.chunk_count
            )
        if file is None:
            file = File(owner_id=ownership.owner_id, sha256=sha256, size_bytes=size)
            session.add(file)
        # A file that failed before is tried again from scratch.
        file.original_name = name
        file.mime_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        file.scope = ownership.scope
        file.department_id = ownership.department_id
        file.classification = ownership.classification
        file.status, file.error = "processing", None
        await session.commit()
        file_id = file.id
    return ClaimedFile(file_id, name, path, max_bytes)


class IndexingFailed(RuntimeError):
    """Writing to a search index failed; the message names the index and an error id."""


def new_error_id() -> str:
    """A short id that ties what a user is shown to the logged detail."""
    return uuid.uuid4().hex[:12]


def display_name(name: str) -> str:
    """The file name as stored and shown: the user's, as text (escaping is the renderers'
    job), without control characters (line breaks, NUL, which PostgreSQL refuses) or bidi
    overrides, shortened in the middle to MAX_NAME_CHARS so its extension stays."""
    cleaned = _BIDI_CONTROLS.sub("", _CONTROL_CHARACTERS.sub(" ", name)).strip()
    if not cleaned:
        return "unnamed file"
    if len(cleaned) <= MAX_NAME_CHARS:
        return cleaned
    head = cleaned[: MAX_NAME_CHARS - _NAME_TAIL_CHARS - 1].rstrip()
    return f"{head}…{cleaned[-_NAME_TAIL_CHARS:]}"


async def _embed(texts: list[str], kb: KnowledgeBase, on_progress: Progress) -> list[list[float]]:
    batch = kb.settings.embedding_batch_size
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch):
        vectors += await asyncio.to_thread(
            kb.embeddings.embed_documents, texts[start : start + batch]
        )
        await _report(on_progress, "embedding", len(vectors), len(texts))
    return vectors


def _store_original(kb: KnowledgeBase, file_id: uuid.UUID, name: str, path: Path) -> Path:
    """Keep the uploaded bytes so sources can be opened (a PDF at its page).

    The file on disk is named by us (``original.<ext>``): a user's name may hold ``..``,
    separators or more characters than a file system allows, and the database has it.
    """
    folder = kb.settings.ensure_data_dir() / "files" / str(file_id)
    folder.mkdir(parents=True, exist_ok=True)
    extension = re.sub(r"[^a-z0-9]", "", Path(name.replace("\\", "/")).suffix.lower())[:10]
    target = folder / (f"original.{extension}" if extension else "original")
    shutil.copyfile(path, target)
    return target


async def _save_chunks(
    kb: KnowledgeBase, file_id: uuid.UUID, drafts: Sequence[ChunkDraft], kind: str, stored: Path
) -> None:
    async with kb.sessions() as session:
        await session.execute(delete(Chunk).where(Chunk.file_id == file_id))
        session.add_all(
            Chunk(
                id=chunk_uuid(file_id, d.ordinal),
                file_id=file_id,
                ordinal=d.ordinal,
                page=d.page,
                text=d.text,
                token_count=d.token_count,
                location=d.location,
                language=d.language,
            )
            for d in drafts
        )
        file = await session.get_one(File, file_id)
        file.storage_path = str(stored)
        await session.commit()


async def _detect_missing_languages(kb: KnowledgeBase, rows: Sequence[Chunk]) -> None:
    """Chunks stored before languages were detected get theirs now, in the database too."""
    missing = [row for row in rows if row.language is None]
    if not missing:
        return
    detected = {row.id: detect_language(row.text) for row in missing}
    async with kb.sessions() as session:
        for chunk_id, language in detected.items():
            if language is not None:
                await session.execute(
                    update(Chunk).where(Chunk.id == chunk_id).values(language=language)
                )
        await session.commit()
    for row in missing:
        row.language = detected[row.id]


def _indexed_chunks(
    file_id: uuid.UUID,
    name: str,
    ownership: Ownership,
    drafts: Sequence[ChunkDraft],
    vectors: Sequence[Sequence[float]],
) -> list[IndexedChunk]:
    access = ownership.access
    return [
        IndexedChunk(
            chunk_id=str(chunk_uuid(file_id, d.ordinal)),
            file_id=str(file_id),
            file_name=name,
            ordinal=d.ordinal,
            page=d.page,
            text=d.text,
            access=access,
            vector=list(v),
            language=d.language,
        )
        for d, v in zip(drafts, vectors, strict=True)
    ]


async def _compensate(kb: KnowledgeBase, file_id: str) -> None:
    for index in (kb.indexes.keyword, kb.indexes.vector):
        try:
            await index.delete_file(file_id)
        except Exception:
            log.exception("could not remove file %s from the %s index", file_id, index.name)
    async with kb.sessions() as session:
        await session.execute(delete(Chunk).where(Chunk.file_id == uuid.UUID(file_id)))
        await session.commit()


async def _mark_failed(kb: KnowledgeBase, file_id: uuid.UUID, error: str) -> None:
    async with kb.sessions() as session:
        file = await session.get_one(File, file_id)
        file.status, file.error, file.chunk_count = "failed", error, 0
        await session.commit()


async def delete_file(kb: KnowledgeBase, file_id: uuid.UUID) -> bool:
    """Remove a file from both indexes, then from the database; False if there was none.

    The indexes go first: if one is unreachable the call fails and the file stays listed,
    so it can be deleted again instead of lingering unseen in an index.
    """
    async with kb.sessions() as session:
        file = await session.get(File, file_id)
        if file is None:
            return False
        stored = Path(file.storage_path) if file.storage_path else None
    await kb.indexes.keyword.delete_file(str(file_id))
    await kb.indexes.vector.delete_file(str(file_id))
    async with kb.sessions() as session:
        await session.execute(delete(File).where(File.id == file_id))
        await session.commit()
    if stored is not None:
        shutil.rmtree(stored.parent, ignore_errors=True)
    return True


@dataclass(frozen=True)
class Reindexed:
    """What a reindex did: chunks indexed, and how each file's chunks were obtained."""

    chunks: int = 0
    files_reread: int = 0  # original re-read, same chunk texts: locations filled in place
    files_rechunked: int = 0  # original re-read, chunk texts changed: chunks replaced
    files_from_database: int = 0  # original missing or unreadable: stored chunks as they are

    @property
    def summary(self) -> str:
        return (
            f"reindexed {self.chunks} chunks: {self.files_reread} files re-read with the same "
            f"chunks, {self.files_rechunked} re-chunked, {self.files_from_database} from the "
            "database as stored (original missing or unreadable)"
        )


async def reindex(
    kb: KnowledgeBase, file_id: uuid.UUID | None = None, on_progress: Progress = _silent
) -> Reindexed:
    """Rebuild the indexes (one file, or everything), re-reading each stored original.

    Each file's kept original is loaded and chunked again, so its chunks carry what the
    loaders record now (chunks ingested before locations existed get them). When the chunk
    texts come out the same, the rows are updated in place and keep their ids; when they
    differ (a loader or the chunk size changed) the file's chunks are replaced, so chunk ids
    in earlier answers' sources may then name other text (their stored snippets stay). A
    file whose original is gone or no longer reads is indexed from its stored chunks. A
    full rebuild also records the embedding model now in use, which is how a model change
    is completed.
    """
    async with kb.sessions() as session:
        query = select(File).where(File.status == "ready")
        if file_id is not None:
            query = query.where(File.id == file_id)
        files = list((await session.scalars(query)).all())
    if file_id is None:
        await kb.indexes.keyword.clear()
        await kb.indexes.vector.clear()
    total, done = sum(f.chunk_count for f in files), 0
    counts = {"reread": 0, "rechunked": 0, "from_database": 0}
    for file in files:
        drafts, how = await _current_chunks(kb, file)
        counts[how] += 1
        vectors = await _embed([d.text for d in drafts], kb, _silent)
        ownership = Ownership(
            file.owner_id,
            file.scope,  # type: ignore[arg-type]
            file.department_id,
            file.classification,  # type: ignore[arg-type]
        )
        chunks = _indexed_chunks(file.id, file.original_name, ownership, drafts, vectors)
        await kb.indexes.keyword.delete_file(str(file.id))
        await kb.indexes.vector.delete_file(str(file.id))
        await kb.indexes.keyword.add(chunks)
        await kb.indexes.vector.add(chunks)
        done += len(chunks)
        await _report(on_progress, "indexing", done, max(total, done))
    if file_id is None:
        async with kb.sessions() as session:
            await record_embedding_model(session, kb.embeddings)
    return Reindexed(done, counts["reread"], counts["rechunked"], counts["from_database"])


ChunkSource = Literal["reread", "rechunked", "from_database"]


async def _current_chunks(kb: KnowledgeBase, file: File) -> tuple[list[ChunkDraft], ChunkSource]:
    """The file's chunks as its original reads now, saved; or the stored ones without it."""
    async with kb.sessions() as session:
        rows = list(
            (
                await session.scalars(
                    select(Chunk).where(Chunk.file_id == file.id).order_by(Chunk.ordinal)
                )
            ).all()
        )
    await _detect_missing_languages(kb, rows)
    stored = [
        ChunkDraft(c.ordinal, c.page, c.text, c.token_count, -1, c.location, c.language)
        for c in rows
    ]
    original = Path(file.storage_path) if file.storage_path else None
    if original is None or not original.is_file():
        log.warning("file %s has no stored original: indexed from its chunks", file.id)
        return stored, "from_database"
    limits = ParseLimits(kb.settings.parse_timeout_seconds, kb.settings.parse_memory_mb)
    try:
        document = await asyncio.to_thread(
            load_document_isolated,
            original,
            filename=file.original_name,
            max_bytes=kb.settings.max_upload_mb * 2**20,
            limits=limits,
        )
    except UnreadableFile as error:
        log.warning("file %s no longer reads (%s): indexed from its chunks", file.id, error)
        return stored, "from_database"
    drafts = await asyncio.to_thread(kb.chunker.split, document.pages)
    if [d.text for d in drafts] == [c.text for c in stored]:
        kept = [
            replace(d, language=c.language or d.language)
            for d, c in zip(drafts, stored, strict=True)
        ]
        await _update_locations(kb, file.id, kept)
        return kept, "reread"
    await _save_chunks(kb, file.id, drafts, document.kind, original)
    async with kb.sessions() as session:
        row = await session.get_one(File, file.id)
        row.page_count, row.chunk_count = document.page_count, len(drafts)
        await session.commit()
    return drafts, "rechunked"


async def _update_locations(
    kb: KnowledgeBase, file_id: uuid.UUID, drafts: Sequence[ChunkDraft]
) -> None:
    async with kb.sessions() as session:
        rows = await session.scalars(select(Chunk).where(Chunk.file_id == file_id))
        by_ordinal = {d.ordinal: d for d in drafts}
        for row in rows:
            draft = by_ordinal[row.ordinal]
            row.page, row.location, row.language = draft.page, draft.location, draft.language
        await session.commit()
