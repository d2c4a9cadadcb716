"""Knowledge files as an admin sees and manages them, inside the admin's reach.

Admins see every file's metadata (owner, scope, status, chunks, error) but read the text
of a personal file only where `admin_can_read_personal_files` allows it; only shared
files (department, company) can be reindexed or deleted from here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import Chunk, Department, File, User
from copilot.review.people import LIST_PAGE_SIZE, NotAllowed
from copilot.review.reach import Reach
from copilot.users import Principal

CONTENT_CHUNKS = 200


@dataclass
class FileRow:
    id: uuid.UUID
    name: str
    owner: str
    scope: str
    department: str | None
    classification: str
    status: str
    chunk_count: int
    page_count: int | None
    size_bytes: int
    error: str | None
    updated_at: datetime
    manageable: bool  # the listing admin may reindex or delete it


async def list_files(
    session: AsyncSession,
    reach: Reach,
    admin: Principal,
    status: str = "",
    scope: str = "",
    page: int = 1,
) -> tuple[list[FileRow], bool]:
    """Files of people in the reach, plus company files (everyone's knowledge)."""
    owner = User.__table__.alias("owner")
    department = Department.__table__.alias("file_department")
    query = (
        select(File, owner.c.email, department.c.code)
        .join(owner, owner.c.id == File.owner_id)
        .outerjoin(department, department.c.id == File.department_id)
        .where(or_(reach.covers(owner.c.department_id), File.scope == "company"))
        .order_by(File.updated_at.desc(), File.id)
        .offset((page - 1) * LIST_PAGE_SIZE)
        .limit(LIST_PAGE_SIZE + 1)
    )
    if status:
        query = query.where(File.status == status)
    if scope:
        query = query.where(File.scope == scope)
    found = (await session.execute(query)).all()
    rows = [
        FileRow(
            file.id,
            file.original_name,
            email,
            file.scope,
            code,
            file.classification,
            file.status,
            file.chunk_count,
            file.page_count,
            file.size_bytes,
            file.error,
            file.updated_at,
            manageable=_why_not_managed(file, reach, admin) is None,
        )
        for file, email, code in found[:LIST_PAGE_SIZE]
    ]
    return rows, len(found) > LIST_PAGE_SIZE


async def managed_file(
    session: AsyncSession, reach: Reach, admin: Principal, file_id: uuid.UUID
) -> File:
    """A shared file the admin may reindex or delete: company files need `admin.datasources`,
    department files must be of the admin's reach; personal files belong to their owner."""
    file = await session.get(File, file_id)
    if file is None:
        raise NotAllowed("no such file")
    if reason := _why_not_managed(file, reach, admin):
        raise NotAllowed(reason)
    return file


def _why_not_managed(file: File, reach: Reach, admin: Principal) -> str | None:
    if file.scope == "personal":
        return "personal files are managed by their owner"
    if file.scope == "company" and not admin.can("admin.datasources"):
        return "managing company files needs the admin.datasources permission"
    if file.scope == "department" and not reach.includes(file.department_id):
        return "this file belongs to another department"
    return None


async def readable_file(
    session: AsyncSession, reach: Reach, file_id: uuid.UUID, personal_allowed: bool
) -> tuple[File, list[Chunk]]:
    """A file and its first chunks, if the admin may read its text."""
    file = await session.get(File, file_id)
    if file is None:
        raise NotAllowed("no such file")
    owner = await session.get(User, file.owner_id)
    in_reach = file.scope == "company" or (
        owner is not None and reach.includes(owner.department_id)
    )
    if not in_reach:
        raise NotAllowed("no such file")
    if file.scope == "personal" and not personal_allowed:
        raise NotAllowed(
            "personal files are private to their owner "
            "(COPILOT_ADMIN_CAN_READ_PERSONAL_FILES lets admins read them)"
        )
    chunks = (
        await session.scalars(
            select(Chunk)
            .where(Chunk.file_id == file_id)
            .order_by(Chunk.ordinal)
            .limit(CONTENT_CHUNKS)
        )
    ).all()
    return file, list(chunks)
