"""`copilot reindex` re-reads each stored original, so chunks ingested before locations
existed get them; what it does with each file is reported."""

from __future__ import annotations

import uuid
from pathlib import Path

import docx
from sqlalchemy import select, update

from copilot.db.models import Chunk, File
from copilot.knowledge.ingest import Ownership, ingest_file, reindex
from copilot.knowledge.knowledge_base import KnowledgeBase
from tests.conftest import People


async def _ingested_policy(kb: KnowledgeBase, people: People, tmp_path: Path) -> uuid.UUID:
    word = docx.Document()
    word.add_heading("4 Travel", level=1)
    word.add_heading("4.2 Hotels", level=2)
    word.add_paragraph("Hotel costs are refunded up to 150 euros a night.")
    word.add_heading("5 Meals", level=1)
    word.add_paragraph("Meals are refunded up to 30 euros a day.")
    path = tmp_path / "policy.docx"
    word.save(str(path))
    owner = Ownership(uuid.UUID(people.admin.user_id), scope="company")
    result = await ingest_file(kb, path, owner)
    assert result.outcome == "indexed", result.error
    return uuid.UUID(result.file_id)


async def _chunks(kb: KnowledgeBase, file_id: uuid.UUID) -> list[tuple[uuid.UUID, str, str | None]]:
    async with kb.sessions() as session:
        rows = await session.scalars(
            select(Chunk).where(Chunk.file_id == file_id).order_by(Chunk.ordinal)
        )
        return [(c.id, c.text, c.location) for c in rows]


async def _forget_locations(kb: KnowledgeBase, file_id: uuid.UUID) -> None:
    """The state a file ingested before migration 0006 is in."""
    async with kb.sessions() as session:
        await session.execute(update(Chunk).where(Chunk.file_id == file_id).values(location=None))
        await session.commit()


async def test_reindex_fills_locations_of_chunks_ingested_before(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    file_id = await _ingested_policy(kb, people, tmp_path)
    ingested = await _chunks(kb, file_id)
    assert [location for _, _, location in ingested] == ["4 Travel > 4.2 Hotels", "5 Meals"]
    await _forget_locations(kb, file_id)

    reindexed = await reindex(kb)

    assert (reindexed.files_reread, reindexed.files_rechunked) == (1, 0)
    assert reindexed.files_from_database == 0 and reindexed.chunks == len(ingested)
    assert await _chunks(kb, file_id) == ingested  # same ids and texts, locations back
    documents, _ = await kb.search.search("hotel costs per night", people.bob.scope)
    located = await kb.locations(documents)
    assert located[0].metadata["location"] == "4 Travel > 4.2 Hotels"
    assert located[0].metadata["kind"] == "docx"


async def test_reindex_replaces_chunks_whose_text_changed(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    file_id = await _ingested_policy(kb, people, tmp_path)
    ingested = await _chunks(kb, file_id)
    # As an older loader would have left it: the whole document in one chunk.
    async with kb.sessions() as session:
        await session.execute(
            update(Chunk).where(Chunk.ordinal > 0, Chunk.file_id == file_id).values(text="stale")
        )
        await session.commit()

    reindexed = await reindex(kb, file_id)

    assert (reindexed.files_reread, reindexed.files_rechunked) == (0, 1)
    assert await _chunks(kb, file_id) == ingested
    assert await kb.indexes.keyword.count(str(file_id)) == len(ingested)
    assert "re-chunked" in reindexed.summary


async def test_reindex_without_the_original_keeps_the_stored_chunks(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    file_id = await _ingested_policy(kb, people, tmp_path)
    await _forget_locations(kb, file_id)
    async with kb.sessions() as session:
        file = await session.get_one(File, file_id)
        Path(str(file.storage_path)).unlink()

    reindexed = await reindex(kb)

    assert reindexed.files_from_database == 1 and reindexed.chunks == 2
    assert [location for _, _, location in await _chunks(kb, file_id)] == [None, None]
    assert "1 from the database" in reindexed.summary
