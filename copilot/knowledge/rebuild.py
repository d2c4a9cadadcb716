"""`copilot reindex --all`: new indexes are built from the database beside the live ones
and switched to when complete (see `Rebuildable`), so search keeps answering meanwhile
and a rebuild that fails or is interrupted leaves the live indexes as they were.

Nothing written meanwhile is lost: writes to the live indexes reach the new ones too
(`Rebuildable` promises it, in every process). A file that became ready while the rebuild
ran is indexed by a catch-up pass before the switch; a file deleted, or whose access
changed, after the rebuild read it is settled again from its row once it is written. A
model change completes here: the new indexes are built with the model now configured,
which is recorded once they are live.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from sqlalchemy import select

from copilot.db.models import File
from copilot.knowledge.access import file_access
from copilot.knowledge.ingest import (
    Progress,
    Rechunked,
    Reindexed,
    _report,
    reindexed_chunks,
    save_rechunked,
)
from copilot.knowledge.knowledge_base import KnowledgeBase, record_embedding_model
from copilot.search.base import KeywordIndex, Rebuildable, SearchIndexError, VectorIndex
from copilot.search.factory import SearchIndexes

log = logging.getLogger(__name__)

#: The last catch-up pass runs at least this long after the rebuild began: by then every
#: process writes to the new indexes too (servers' indexes look for a rebuild once a second).
CATCH_UP_AFTER_SECONDS = 2.0


async def rebuild_all(kb: KnowledgeBase, on_progress: Progress) -> Reindexed:
    """Build both indexes anew from every ready file, then switch to them."""
    keyword = _rebuildable(kb.indexes.keyword)
    vector = _rebuildable(kb.indexes.vector)
    began = time.monotonic()
    new_keyword: KeywordIndex = await keyword.begin_rebuild()
    try:
        new_vector: VectorIndex = await vector.begin_rebuild()
    except BaseException:
        await _discard(keyword, new_keyword)
        raise
    try:
        result = await _fill(kb, SearchIndexes(new_keyword, new_vector), began, on_progress)
    except BaseException:
        log.exception("the rebuild failed: the live indexes stay as they were")
        await _discard(keyword, new_keyword)
        await _discard(vector, new_vector)
        raise
    try:
        await keyword.switch_to(new_keyword)
        await vector.switch_to(new_vector)
    finally:
        await kb.indexes_changed()
    async with kb.sessions() as session:
        await record_embedding_model(session, kb.embeddings)
    return result


def _rebuildable(index: KeywordIndex | VectorIndex) -> Rebuildable[Any]:
    if not isinstance(index, Rebuildable):
        raise SearchIndexError(index.name, "this index cannot be rebuilt beside the live one")
    return index


async def _discard(index: Rebuildable[Any], rebuilt: KeywordIndex | VectorIndex) -> None:
    try:
        await index.discard(rebuilt)
    except Exception:
        log.exception("could not remove the partial rebuild of the %s index", rebuilt.name)


async def _fill(
    kb: KnowledgeBase, target: SearchIndexes, began: float, on_progress: Progress
) -> Reindexed:
    """Index every ready file into `target`, until a pass finds no file it has not done;
    then store the re-chunked files' chunks (one transaction) just before the switch."""
    done: set[uuid.UUID] = set()
    rechunked: list[Rechunked] = []
    counts = {"reread": 0, "rechunked": 0, "from_database": 0}
    chunks_done, total = 0, 0
    while True:
        files = await _ready_files(kb, done)
        if not files:
            wait = CATCH_UP_AFTER_SECONDS - (time.monotonic() - began)
            if wait <= 0:
                break
            await asyncio.sleep(wait)
            continue
        total += sum(file.chunk_count for file in files)
        catching_up = bool(done)
        for file in files:
            chunks, how = await reindexed_chunks(kb, file, rechunked)
            counts[how] += 1
            if catching_up:
                # Its upload wrote it into the new indexes too, from another handle; an
                # add by chunk id over another LanceDB handle's rows can keep both copies
                # (seen with an upload during a rebuild), so its entries are replaced.
                await target.keyword.delete_file(str(file.id))
                await target.vector.delete_file(str(file.id))
            await target.keyword.add(chunks)
            await target.vector.add(chunks)
            await _settle(kb, file, target)
            done.add(file.id)
            chunks_done += len(chunks)
            await _report(on_progress, "indexing", chunks_done, max(total, chunks_done))
    await save_rechunked(kb, rechunked)
    return Reindexed(chunks_done, counts["reread"], counts["rechunked"], counts["from_database"])


async def _ready_files(kb: KnowledgeBase, done: set[uuid.UUID]) -> list[File]:
    async with kb.sessions() as session:
        files = (await session.scalars(select(File).where(File.status == "ready"))).all()
    return [file for file in files if file.id not in done]


async def _settle(kb: KnowledgeBase, file: File, target: SearchIndexes) -> None:
    """Deleted, given other access or other tags since its row was read: the live indexes
    had that change (and passed it on) before the chunks reached the new ones, so redo it
    here (new tags: the file indexed again from the row, as `set_file_tags` does)."""
    async with kb.sessions() as session:
        row = await session.get(File, file.id)
    if row is None or row.status != "ready":
        await target.keyword.delete_file(str(file.id))
        await target.vector.delete_file(str(file.id))
    elif list(row.tags or []) != list(file.tags or []):
        chunks, _ = await reindexed_chunks(kb, row, [])  # re-chunked: saved by the pass
        for index in (target.keyword, target.vector):
            await index.delete_file(str(file.id))
            await index.add(chunks)
    elif file_access(row) != file_access(file):
        await target.keyword.update_access(str(file.id), file_access(row))
        await target.vector.update_access(str(file.id), file_access(row))
