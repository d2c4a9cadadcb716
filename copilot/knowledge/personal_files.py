"""A user's own knowledge: the personal files they uploaded, as they see and delete them.

Only files that are both owned by the user and personal in scope belong here. A file an
admin added as company or department knowledge is owned by that admin too, but it is
managed in /admin (copilot.review.files), never from the owner's own files page. Asking
for anyone else's file, or a shared one, finds nothing: the caller cannot tell a file it
may not see from one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import File
from copilot.knowledge.ingest import delete_file
from copilot.knowledge.jobs import IN_PROGRESS
from copilot.knowledge.knowledge_base import KnowledgeBase

PERSONAL = "personal"

Deleted = Literal["deleted", "missing", "in_progress"]


async def personal_files(session: AsyncSession, owner_id: uuid.UUID) -> list[File]:
    """The owner's personal files, newest first."""
    rows = await session.scalars(
        select(File)
        .where(File.owner_id == owner_id, File.scope == PERSONAL)
        .order_by(File.created_at.desc(), File.id)
    )
    return list(rows.all())


async def personal_file(
    session: AsyncSession, owner_id: uuid.UUID, file_id: uuid.UUID
) -> File | None:
    """The owner's personal file `file_id`; None for anyone else's, or a shared one."""
    file = await session.get(File, file_id)
    if file is None or file.owner_id != owner_id or file.scope != PERSONAL:
        return None
    return file


async def delete_personal_file(
    kb: KnowledgeBase, owner_id: uuid.UUID, file_id: uuid.UUID
) -> tuple[Deleted, str]:
    """Delete the owner's personal file from the database and both indexes.

    Returns what happened and the file's name ("" when missing). A file still being added
    is left alone: its ingestion would write it back into the indexes.
    """
    async with kb.sessions() as session:
        file = await personal_file(session, owner_id, file_id)
        if file is None:
            return "missing", ""
        name, status = file.original_name, file.status
    if status in IN_PROGRESS:
        return "in_progress", name
    await delete_file(kb, file_id)
    return "deleted", name
