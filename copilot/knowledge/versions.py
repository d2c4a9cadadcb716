"""A file's next version, switched to with no moment where neither or both versions answer.

  1. `prepare`: the new bytes are parsed, chunked and embedded. Chunk ids of a version
     above 1 include the version (`ingest.chunk_uuid`), so they differ from the current's.
  2. `add_to_indexes`: the new chunks go into both indexes beside the current ones. They
     do not answer yet: every retrieved chunk is looked up in the database by id
     (`copilot.knowledge.locations`), and no row names them.
  3. `switch`: one transaction replaces the file's chunk rows, bumps `files.version` and
     writes its `file_versions` row. From that commit on the new chunks answer and the
     old ones are dropped wherever an index still returns them.
  4. `prune`: the old chunks leave both indexes.

The first version of a data source's file goes the same way (no old chunks). A crash
between the steps leaves chunks in an index that no row names; the file's progress lists
them beforehand (`leftovers`: version and chunk count), so the next attempt on the file
removes them first (`clear_leftovers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, select, update

from copilot.db.models import Chunk, File, FileVersion
from copilot.db.types import utcnow
from copilot.knowledge.chunking import ChunkDraft
from copilot.knowledge.claimant import claimed_progress
from copilot.knowledge.ingest import (
    IndexingFailed,
    Ownership,
    _indexed_chunks,
    _store_original,
    chunk_rows,
    chunk_uuid,
    new_error_id,
    record_first_version,
)
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.loaders import LoadedDocument, ParseLimits, load_document_isolated
from copilot.knowledge.pipeline import tokenizer_turn
from copilot.search.base import IndexedChunk

log = logging.getLogger(__name__)
A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class Content:
    """The bytes of a version: a local file, its digest, size and time at the source."""

    path: Path
    sha256: str
    size_bytes: int
    modified_at: datetime | None = None


@dataclass(frozen=True)
class PreparedVersion:
    """A version parsed, chunked and embedded, not yet in the indexes or the database."""

    file_id: uuid.UUID
    name: str
    version: int
    content: Content
    document: LoadedDocument
    drafts: list[ChunkDraft]
    chunks: list[IndexedChunk]
    superseded: list[str]  # the chunk ids of the version it replaces
    replaced_version: int

    @property
    def chunk_ids(self) -> list[str]:
        return [chunk.chunk_id for chunk in self.chunks]


async def index_version(kb: KnowledgeBase, file_id: uuid.UUID, content: Content) -> File:
    """Make `content` the file's current version (its first, for a file not ready yet);
    raises UnreadableFile or IndexingFailed with the file's current version untouched."""
    prepared = await prepare(kb, file_id, content)
    await add_to_indexes(kb, prepared)
    file = await switch(kb, prepared)
    await prune(kb, prepared)
    return file


async def prepare(kb: KnowledgeBase, file_id: uuid.UUID, content: Content) -> PreparedVersion:
    async with kb.sessions() as session:
        file = await session.get_one(File, file_id)
        current = list(
            (await session.scalars(select(Chunk.id).where(Chunk.file_id == file_id))).all()
        )
    await clear_leftovers(kb, file)
    # A file that never became ready has no version answering: its first is written again.
    version = file.version + 1 if file.status == "ready" else file.version
    settings = kb.settings
    document = await asyncio.to_thread(
        load_document_isolated,
        content.path,
        filename=file.original_name,
        max_bytes=settings.max_upload_mb * 2**20,
        limits=ParseLimits(settings.parse_timeout_seconds, settings.parse_memory_mb),
    )
    drafts = await asyncio.to_thread(_in_turn, kb, kb.chunker.split, document.pages)
    texts = [d.text for d in drafts]
    vectors: list[list[float]] = []
    for start in range(0, len(texts), settings.embedding_batch_size):
        batch = texts[start : start + settings.embedding_batch_size]
        vectors += await asyncio.to_thread(_in_turn, kb, kb.embeddings.embed_documents, batch)
    chunks = _indexed_chunks(
        file.id, file.original_name, Ownership.of(file), drafts, vectors, version, file.tags or ()
    )
    return PreparedVersion(
        file.id,
        file.original_name,
        version,
        content,
        document,
        drafts,
        chunks,
        [str(chunk_id) for chunk_id in current] if file.status == "ready" else [],
        file.version,
    )


async def add_to_indexes(kb: KnowledgeBase, prepared: PreparedVersion) -> None:
    """Step 1: the new chunks into both indexes (recorded first as leftovers, should the
    process die before the switch); on a refusal, taken out again."""
    await _set_leftovers(kb, prepared.file_id, [(prepared.version, len(prepared.chunks))])
    if not prepared.chunks:
        return
    for index in (kb.indexes.keyword, kb.indexes.vector):
        try:
            await index.add(prepared.chunks)
        except Exception as error:
            error_id = new_error_id()
            log.exception(
                "the %s index refused version %d of file %s: error id %s",
                index.name,
                prepared.version,
                prepared.file_id,
                error_id,
            )
            await _remove_quietly(kb, prepared.chunk_ids)
            raise IndexingFailed(
                f"the {index.name} index could not store it (error id {error_id}); try again later."
            ) from error


async def switch(kb: KnowledgeBase, prepared: PreparedVersion) -> File:
    """Step 2: one commit makes the new version the one that answers."""
    content, document = prepared.content, prepared.document
    stored = await asyncio.to_thread(
        _store_original, kb, prepared.file_id, prepared.name, content.path, prepared.version
    )
    async with kb.sessions() as session:
        file = await session.get_one(File, prepared.file_id)
        previous_original = file.storage_path
        await session.execute(delete(Chunk).where(Chunk.file_id == file.id))
        session.add_all(chunk_rows(file.id, prepared.drafts, prepared.version))
        file.version = prepared.version
        file.sha256, file.size_bytes = content.sha256, content.size_bytes
        file.source_modified_at = content.modified_at
        file.mime_type = document.mime_type
        file.page_count, file.chunk_count = document.page_count, len(prepared.drafts)
        file.status, file.error = "ready", None
        file.storage_path = str(stored)
        file.indexed_at = utcnow()
        superseded = (prepared.replaced_version, len(prepared.superseded))
        file.progress = _leftovers_progress([superseded]) if prepared.superseded else None
        if prepared.version == 1:
            await record_first_version(session, file)
        else:
            session.add(
                FileVersion(
                    file_id=file.id,
                    version=prepared.version,
                    sha256=content.sha256,
                    size_bytes=content.size_bytes,
                    modified_at=content.modified_at,
                    chunk_count=len(prepared.drafts),
                )
            )
        await session.commit()
    await kb.indexes_changed()  # no cached result may hold the replaced version
    if previous_original and previous_original != str(stored):
        _remove_original(Path(previous_original))
    return file


async def prune(kb: KnowledgeBase, prepared: PreparedVersion) -> None:
    """Step 3: the replaced version's chunks out of both indexes."""
    kept = set(prepared.chunk_ids)
    old = [chunk_id for chunk_id in prepared.superseded if chunk_id not in kept]
    if old:
        await kb.indexes.keyword.delete_chunks(old)
        await kb.indexes.vector.delete_chunks(old)
        await kb.indexes_changed()
    await _set_leftovers(kb, prepared.file_id, [])


async def clear_leftovers(kb: KnowledgeBase, file: File) -> None:
    """Remove from both indexes what an interrupted attempt on the file left there.

    Nothing of a file that is not ready answers, so all of it goes; a ready file loses the
    chunks its progress lists that no database row names."""
    if file.status != "ready":
        await kb.indexes.keyword.delete_file(str(file.id))
        await kb.indexes.vector.delete_file(str(file.id))
    listed = (file.progress or {}).get("leftovers") or []
    if not listed:
        return
    async with kb.sessions() as session:
        current = {
            str(chunk_id)
            for chunk_id in (
                await session.scalars(select(Chunk.id).where(Chunk.file_id == file.id))
            ).all()
        }
    stale = [
        str(chunk_uuid(file.id, ordinal, int(version)))
        for version, count in listed
        for ordinal in range(int(count))
    ]
    stale = [chunk_id for chunk_id in stale if chunk_id not in current]
    if stale:
        log.warning("file %s: removing %d chunks an interrupted sync left", file.id, len(stale))
        await kb.indexes.keyword.delete_chunks(stale)
        await kb.indexes.vector.delete_chunks(stale)
        await kb.indexes_changed()
    await _set_leftovers(kb, file.id, [])


def _in_turn(kb: KnowledgeBase, work: Callable[[A], R], argument: A) -> R:
    """Chunk or embed taking turns with the ingestion pipeline (one tokenizer, see there)."""
    with tokenizer_turn(kb):
        return work(argument)


def _remove_original(original: Path) -> None:
    """The replaced version's bytes, and its version folder (``v2/``) when it had one."""
    original.unlink(missing_ok=True)
    if re.fullmatch(r"v\d+", original.parent.name):
        with contextlib.suppress(OSError):
            original.parent.rmdir()


def _leftovers_progress(leftovers: list[tuple[int, int]]) -> dict[str, Any]:
    return {**claimed_progress(), "leftovers": [list(item) for item in leftovers]}


async def _set_leftovers(
    kb: KnowledgeBase, file_id: uuid.UUID, leftovers: list[tuple[int, int]]
) -> None:
    async with kb.sessions() as session:
        file = await session.get_one(File, file_id)
        if leftovers:
            progress = _leftovers_progress(leftovers)
        elif file.status == "processing":
            progress = claimed_progress()  # still claimed by this process
        else:
            progress = None
        await session.execute(update(File).where(File.id == file_id).values(progress=progress))
        await session.commit()


async def _remove_quietly(kb: KnowledgeBase, chunk_ids: list[str]) -> None:
    for index in (kb.indexes.keyword, kb.indexes.vector):
        try:
            await index.delete_chunks(chunk_ids)
        except Exception:
            log.exception("could not remove %d chunks from %s", len(chunk_ids), index.name)
