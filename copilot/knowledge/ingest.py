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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import Chunk, File, FileVersion
from copilot.knowledge.chunking import ChunkDraft
from copilot.knowledge.claimant import claimed_progress
from copilot.knowledge.knowledge_base import KnowledgeBase
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

#: stage name, items done, items in total ("parsing": pages, "chunking" and "embedding":
#: chunks, "indexing": indexes); may be a coroutine function (copilot.knowledge.jobs
#: records it for every chat of the owner).
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
        pages = f"{_counted(self.pages, 'page')}, " if self.pages else ""
        return f"indexed {self.name}: {pages}{_counted(self.chunks, 'chunk')}"


def _counted(number: int, noun: str) -> str:
    """ "1 chunk", "2 chunks"."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


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

    @classmethod
    def of(cls, file: File) -> Ownership:
        """A stored file's (its columns were checked against these values when written)."""
        return cls(
            file.owner_id,
            file.scope,  # type: ignore[arg-type]
            file.department_id,
            file.classification,  # type: ignore[arg-type]
        )

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


def chunk_uuid(file_id: uuid.UUID, ordinal: int, version: int = 1) -> uuid.UUID:
    """The same id in the database and in both indexes, derived so a rebuild keeps it.

    A later version's chunks get ids of their own, so they can sit in the indexes beside
    the current version's until one database commit switches to them
    (`copilot.knowledge.versions`)."""
    return uuid.uuid5(file_id, str(ordinal) if version == 1 else f"{version}:{ordinal}")


def chunk_rows(file_id: uuid.UUID, drafts: Sequence[ChunkDraft], version: int = 1) -> list[Chunk]:
    """The database rows of a file's chunks."""
    return [
        Chunk(
            id=chunk_uuid(file_id, d.ordinal, version),
            file_id=file_id,
            ordinal=d.ordinal,
            page=d.page,
            text=d.text,
            token_count=d.token_count,
            location=d.location,
            language=d.language,
        )
        for d in drafts
    ]


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
    """Parse, chunk, embed and index one file; duplicates (same owner, same bytes) are skipped.

    A file admitted earlier (status pending, see copilot.knowledge.jobs) is taken over here.
    """
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
    tags: tuple[str, ...] = ()  # the row's (a source's folder path, an admin's labels)


#: Statuses of a file that another upload of the same bytes must not take over.
_TAKEN: dict[str, tuple[str, ...]] = {
    "processing": ("ready", "processing"),  # pending: admitted, waiting for whoever runs it
    "pending": ("ready", "processing", "pending"),
}


async def claim_file(
    kb: KnowledgeBase,
    path: Path,
    ownership: Ownership,
    *,
    filename: str | None = None,
    status: Literal["pending", "processing"],
) -> File | IngestResult:
    """The file's row, created or taken over with `status`; or why there is nothing to do.

    Refused (empty, too large) before any row is written. The same owner's same bytes are
    one row (a unique constraint): a row that is ready or being ingested makes this a
    duplicate; a failed one (or, for "processing", a pending one) is taken over with a
    compare-and-set, so two concurrent claims never both win and never raise.
    """
    name = display_name(filename or path.name)
    size = path.stat().st_size
    if (refusal := size_refusal(name, size, kb.settings.max_upload_mb)) is not None:
        return IngestResult("", name, "failed", error=str(refusal))
    sha256 = await asyncio.to_thread(file_sha256, path)
    values = {
        "original_name": name,
        "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "scope": ownership.scope,
        "department_id": ownership.department_id,
        "classification": ownership.classification,
        "status": status,
        "error": None,
        # Who runs it, so a restart on this host sees at once that it died (see claimant).
        "progress": claimed_progress() if status == "processing" else None,
    }
    same_bytes = select(File).where(
        File.owner_id == ownership.owner_id, File.sha256 == sha256, File.source_id.is_(None)
    )
    async with kb.sessions() as session:
        file = await session.scalar(same_bytes)
        if file is None:
            file = File(owner_id=ownership.owner_id, sha256=sha256, size_bytes=size, **values)
            session.add(file)
            try:
                await session.commit()
                return file
            except IntegrityError:  # the same bytes, claimed a moment ago by another upload
                await session.rollback()
                file = await session.scalar(same_bytes)
                if file is None:
                    raise
                return _duplicate(file)
        if file.status in _TAKEN[status]:
            return _duplicate(file)
        # A failed file is tried again from scratch; a pending one is run now.
        taken = await session.execute(
            update(File).where(File.id == file.id, File.status == file.status).values(**values)
        )
        await session.commit()
        file = await session.get_one(File, file.id, populate_existing=True)
        return file if taken.rowcount == 1 else _duplicate(file)  # type: ignore[attr-defined]


def size_refusal(name: str, size: int, limit_mb: int) -> UnreadableFile | None:
    """Why a file of `size` bytes is not read at all (empty, or over the limit); None if
    it may be. Uploads and data sources refuse in the same words."""
    if size == 0:
        return EmptyFile(name, "is empty (0 bytes); there is no text to add.")
    if size > limit_mb * 2**20:
        return TooLarge(name, f"is {size / 2**20:.1f} MiB; the limit is {limit_mb} MiB.")
    return None


def _duplicate(file: File) -> IngestResult:
    return IngestResult(
        str(file.id), file.original_name, "duplicate", file.page_count, file.chunk_count
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(2**20):
            digest.update(block)
    return digest.hexdigest()


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


def _store_original(
    kb: KnowledgeBase, file_id: uuid.UUID, name: str, path: Path, version: int = 1
) -> Path:
    """Keep the uploaded bytes so sources can be opened (a PDF at its page).

    The file on disk is named by us (``original.<ext>``): a user's name may hold ``..``,
    separators or more characters than a file system allows, and the database has it.
    A later version's original goes in a folder of its own (``v2/``), so the current
    one stays until the switch to the new version is committed.
    """
    folder = kb.settings.ensure_data_dir() / "files" / str(file_id)
    if version > 1:
        folder /= f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    extension = re.sub(r"[^a-z0-9]", "", Path(name.replace("\\", "/")).suffix.lower())[:10]
    target = folder / (f"original.{extension}" if extension else "original")
    if not (target.exists() and target.samefile(path)):  # a queued upload is read from there
        shutil.copyfile(path, target)
    return target


async def _save_chunks(
    kb: KnowledgeBase, file_id: uuid.UUID, drafts: Sequence[ChunkDraft], kind: str, stored: Path
) -> None:
    async with kb.sessions() as session:
        await session.execute(delete(Chunk).where(Chunk.file_id == file_id))
        session.add_all(chunk_rows(file_id, drafts))
        file = await session.get_one(File, file_id)
        file.storage_path = str(stored)
        await session.commit()


async def record_first_version(session: AsyncSession, file: File) -> None:
    """Version 1's history row (sha256, size, chunks), unless a retry wrote it already."""
    recorded = await session.scalar(
        select(FileVersion.id).where(FileVersion.file_id == file.id, FileVersion.version == 1)
    )
    if recorded is None:
        session.add(
            FileVersion(
                file_id=file.id,
                version=1,
                sha256=file.sha256,
                size_bytes=file.size_bytes,
                modified_at=file.source_modified_at,
                chunk_count=file.chunk_count,
            )
        )


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
    version: int = 1,
    tags: Sequence[str] = (),
) -> list[IndexedChunk]:
    access = ownership.access
    labels = tuple(tags)
    return [
        IndexedChunk(
            chunk_id=str(chunk_uuid(file_id, d.ordinal, version)),
            file_id=str(file_id),
            file_name=name,
            ordinal=d.ordinal,
            page=d.page,
            text=d.text,
            access=access,
            vector=list(v),
            language=d.language,
            tags=labels,
        )
        for d, v in zip(drafts, vectors, strict=True)
    ]


async def _compensate(kb: KnowledgeBase, file_id: str) -> None:
    for index in (kb.indexes.keyword, kb.indexes.vector):
        try:
            await index.delete_file(file_id)
        except Exception:
            log.exception("could not remove file %s from the %s index", file_id, index.name)
    await kb.indexes_changed()
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
    try:
        await kb.indexes.keyword.delete_file(str(file_id))
        await kb.indexes.vector.delete_file(str(file_id))
    finally:  # one index may have dropped it already: no cached result may still hold it
        await kb.indexes_changed()
    async with kb.sessions() as session:
        await session.execute(delete(File).where(File.id == file_id))
        await session.commit()
    if stored is not None:
        shutil.rmtree(stored.parent, ignore_errors=True)
    # Every version's original is kept under the file's own folder.
    shutil.rmtree(kb.settings.data_dir / "files" / str(file_id), ignore_errors=True)
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
    file whose original is gone or no longer reads is indexed from its stored chunks.

    Everything (`file_id` None) is built beside the live indexes and switched to when
    complete (`copilot.knowledge.rebuild`), which also records the embedding model now in
    use: that is how a model change is completed. One file is replaced in the live ones.
    """
    if file_id is None:
        from copilot.knowledge.rebuild import rebuild_all  # it builds on this module

        return await rebuild_all(kb, on_progress)
    async with kb.sessions() as session:
        files = list(
            (
                await session.scalars(
                    select(File).where(File.status == "ready", File.id == file_id)
                )
            ).all()
        )
    done = 0
    counts = {"reread": 0, "rechunked": 0, "from_database": 0}
    for file in files:
        chunks, how = await reindexed_chunks(kb, file)
        counts[how] += 1
        try:
            await kb.indexes.keyword.delete_file(str(file.id))
            await kb.indexes.vector.delete_file(str(file.id))
            await kb.indexes.keyword.add(chunks)
            await kb.indexes.vector.add(chunks)
        finally:
            await kb.indexes_changed()
        done += len(chunks)
        await _report(on_progress, "indexing", done, max(file.chunk_count, done))
    return Reindexed(done, counts["reread"], counts["rechunked"], counts["from_database"])


async def reindexed_chunks(
    kb: KnowledgeBase, file: File, deferred: list[Rechunked] | None = None
) -> tuple[list[IndexedChunk], ChunkSource]:
    """The file's chunks as the indexes should hold them now, embedded; see `reindex`.
    With `deferred`, chunks that changed are collected there instead of saved."""
    drafts, how = await _current_chunks(kb, file, deferred)
    vectors = await _embed([d.text for d in drafts], kb, _silent)
    ownership = Ownership.of(file)
    chunks = _indexed_chunks(
        file.id, file.original_name, ownership, drafts, vectors, file.version, file.tags or ()
    )
    return chunks, how


@dataclass(frozen=True)
class Rechunked:
    """A file whose original now reads into other chunks: what to store for it."""

    file_id: uuid.UUID
    drafts: list[ChunkDraft]
    kind: str
    original: Path
    page_count: int | None
    version: int = 1


async def save_rechunked(kb: KnowledgeBase, files: Sequence[Rechunked]) -> None:
    """Replace the chunks of every re-chunked file in one transaction."""
    if not files:
        return
    async with kb.sessions() as session:
        for item in files:
            await session.execute(delete(Chunk).where(Chunk.file_id == item.file_id))
            session.add_all(chunk_rows(item.file_id, item.drafts, item.version))
            row = await session.get_one(File, item.file_id)
            row.storage_path = str(item.original)
            row.page_count, row.chunk_count = item.page_count, len(item.drafts)
        await session.commit()


ChunkSource = Literal["reread", "rechunked", "from_database"]


async def _current_chunks(
    kb: KnowledgeBase, file: File, deferred: list[Rechunked] | None = None
) -> tuple[list[ChunkDraft], ChunkSource]:
    """The file's chunks as its original reads now, saved (or added to `deferred`); or
    the stored ones without it."""
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
    changed = Rechunked(file.id, drafts, document.kind, original, document.page_count, file.version)
    if deferred is None:
        await save_rechunked(kb, [changed])
    else:
        deferred.append(changed)
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
