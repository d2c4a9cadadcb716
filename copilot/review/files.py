"""Knowledge files as an admin sees and manages them.

The text of a file is shown under the admin's `Clearance` (the search rule, plus the
personal files of their reach where `admin_can_read_personal_files` allows it). Shared
files (department, company) can be reindexed or deleted with `documents.delete`, for the
departments of the admin's reach (company files also need `admin.datasources`) and within
their clearance. The listing holds only files the admin may read or manage: it does not
reveal the names of the others.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import Chunk, DataSource, Department, File, FileVersion, User
from copilot.db.types import json_array_holds
from copilot.review.clearance import Clearance, facts_of
from copilot.review.people import LIST_PAGE_SIZE, NotAllowed

MANAGE_PERMISSION = "documents.delete"
COMPANY_PERMISSION = "admin.datasources"
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
    readable: bool = True  # ... and read its text
    tags: list[str] = field(default_factory=list)
    version: int = 1


async def list_files(
    session: AsyncSession,
    clearance: Clearance,
    status: str = "",
    scope: str = "",
    page: int = 1,
    *,
    tag: str = "",
    source_id: uuid.UUID | None = None,
) -> tuple[list[FileRow], bool]:
    """Files the admin may read or manage, newest first; with `tag`, those carrying it
    (exactly), with `source_id`, those of that data source."""
    owner = User.__table__.alias("owner")
    department = Department.__table__.alias("file_department")
    query = (
        select(File, owner.c.email, owner.c.department_id, department.c.code)
        .join(owner, owner.c.id == File.owner_id)
        .outerjoin(department, department.c.id == File.department_id)
        .where(or_(clearance.readable(owner.c.department_id), _manageable(clearance)))
        .order_by(File.updated_at.desc(), File.id)
        .offset((page - 1) * LIST_PAGE_SIZE)
        .limit(LIST_PAGE_SIZE + 1)
    )
    if status:
        query = query.where(File.status == status)
    if scope:
        query = query.where(File.scope == scope)
    if tag:
        query = query.where(json_array_holds(File.tags, tag))
    if source_id is not None:
        query = query.where(File.source_id == source_id)
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
            manageable=_why_not_managed(file, clearance) is None,
            readable=clearance.may_read(facts_of(file, owner_department)),
            tags=list(file.tags or []),
            version=file.version,
        )
        for file, email, owner_department, code in found[:LIST_PAGE_SIZE]
    ]
    return rows, len(found) > LIST_PAGE_SIZE


def _manageable(clearance: Clearance) -> ColumnElement[bool]:
    """`_why_not_managed(...) is None` as SQL on `File`."""
    admin = clearance.principal
    if not admin.can(MANAGE_PERMISSION):
        return false()
    places: list[ColumnElement[bool]] = [
        and_(File.scope == "department", clearance.reach.covers(File.department_id))
    ]
    if admin.can(COMPANY_PERMISSION):
        places.append(File.scope == "company")
    return and_(File.classification.in_(sorted(admin.classifications)), or_(*places))


async def managed_file(session: AsyncSession, clearance: Clearance, file_id: uuid.UUID) -> File:
    """A shared file the admin may reindex or delete; NotAllowed says why not."""
    file = await session.get(File, file_id)
    if file is None:
        raise NotAllowed("no such file")
    if reason := _why_not_managed(file, clearance):
        raise NotAllowed(reason)
    return file


def _why_not_managed(file: File, clearance: Clearance) -> str | None:
    admin = clearance.principal
    if file.scope == "personal":
        return "personal files are managed by their owner"
    if not admin.can(MANAGE_PERMISSION):
        return f"managing knowledge files needs the {MANAGE_PERMISSION} permission"
    if file.scope == "company" and not admin.can(COMPANY_PERMISSION):
        return f"managing company files needs the {COMPANY_PERMISSION} permission"
    if file.scope == "department" and not clearance.reach.includes(file.department_id):
        return "this file belongs to another department"
    if file.classification not in admin.classifications:
        return "this file is above your clearance"
    return None


async def readable_file(
    session: AsyncSession, clearance: Clearance, file_id: uuid.UUID
) -> tuple[File, list[Chunk]]:
    """A file and its first chunks, if the admin may read its text (else NotAllowed, shown
    as a 404: a file the admin may not read is not confirmed to exist)."""
    found = (
        await session.execute(
            select(File, User.department_id)
            .join(User, User.id == File.owner_id)
            .where(File.id == file_id)
        )
    ).first()
    if found is None:
        raise NotAllowed("no such file")
    file, owner_department = found
    if not clearance.may_read(facts_of(file, owner_department)):
        raise NotAllowed("no such file you may read")
    chunks = (
        await session.scalars(
            select(Chunk)
            .where(Chunk.file_id == file_id)
            .order_by(Chunk.ordinal)
            .limit(CONTENT_CHUNKS)
        )
    ).all()
    return file, list(chunks)


@dataclass(frozen=True)
class FileHistory:
    """Where a file comes from and the versions it has had, newest first."""

    versions: list[FileVersion]
    source_name: str | None
    source_path: str | None


async def file_history(session: AsyncSession, file: File) -> FileHistory:
    versions = (
        await session.scalars(
            select(FileVersion)
            .where(FileVersion.file_id == file.id)
            .order_by(FileVersion.version.desc())
        )
    ).all()
    source = await session.get(DataSource, file.source_id) if file.source_id else None
    return FileHistory(list(versions), source.name if source else None, file.source_path)


async def taggable_file(session: AsyncSession, clearance: Clearance, file_id: uuid.UUID) -> File:
    """A shared file the admin may set the tags of (`admin.datasources`, within their reach
    and clearance); NotAllowed says why not. Personal files are tagged by no admin."""
    file = await session.get(File, file_id)
    if file is None:
        raise NotAllowed("no such file")
    if not clearance.principal.can(COMPANY_PERMISSION):
        raise NotAllowed(f"setting a file's tags needs the {COMPANY_PERMISSION} permission")
    if file.scope == "personal":
        raise NotAllowed("personal files are managed by their owner")
    if file.scope == "department" and not clearance.reach.includes(file.department_id):
        raise NotAllowed("this file belongs to another department")
    if file.classification not in clearance.principal.classifications:
        raise NotAllowed("this file is above your clearance")
    return file
