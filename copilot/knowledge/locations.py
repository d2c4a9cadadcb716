"""Where retrieved chunks are in their documents, read from the database.

The search indexes hold what search needs; a chunk's location (heading path, slide title,
row range) and its file's kind live in PostgreSQL (or SQLite), the source of truth. An
answer's sources are looked up there in one query by chunk id, so citations can name the
exact place without every index schema carrying it.

The same lookup makes the database the switch between a file's versions: a retrieved
chunk with no row (a superseded version's, still in an index until it is pruned; or a
deleted file's) is dropped, so a file's new chunks answer from the commit that stores
their rows, and its old ones stop answering at that same commit
(`copilot.knowledge.versions`).
"""

from __future__ import annotations

import uuid

from langchain_core.documents import Document
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.db.models import Chunk, File
from copilot.knowledge.loaders import MIME_TYPES

_KIND_OF_MIME_TYPE = {mime_type: kind for kind, mime_type in MIME_TYPES.items()}


class ChunkLocations:
    """Adds ``location`` and ``kind`` ("pdf", "pptx", "docx" ...) to retrieved documents,
    and drops those whose chunk the database no longer (or not yet) holds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __call__(self, documents: list[Document]) -> list[Document]:
        ids = [uuid.UUID(str(d.metadata["chunk_id"])) for d in documents]
        async with self._sessions() as session:
            rows = await session.execute(
                select(Chunk.id, Chunk.location, File.mime_type)
                .join(File, File.id == Chunk.file_id)
                .where(Chunk.id.in_(ids))
            )
            found = {str(row.id): (row.location, row.mime_type) for row in rows}
        located = []
        for document in documents:
            row = found.get(str(document.metadata["chunk_id"]))
            if row is None:
                continue
            location, mime_type = row
            metadata = {
                **document.metadata,
                "location": location,
                "kind": _KIND_OF_MIME_TYPE.get(mime_type or ""),
            }
            located.append(
                Document(id=document.id, page_content=document.page_content, metadata=metadata)
            )
        return located
