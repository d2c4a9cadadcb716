"""Changing who may read a file: its row first (PostgreSQL is the truth), then the access
tokens of its chunks in both indexes, in place. Nothing is parsed or embedded again.

If an index refuses the change, both indexes get the old access back and so does the row,
and the error names the index: a failed change leaves the file readable by exactly the
people it was readable by before. (Should the process die between the row and the
indexes, `copilot reindex --file ID` rebuilds the indexes from the row.)
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import cast

from sqlalchemy import ColumnElement, and_, or_

from copilot.db.models import CLASSIFICATIONS, FILE_SCOPES, Department, File, User
from copilot.knowledge.ingest import Classification, FileScope, Ownership
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.search.base import KeywordIndex, VectorIndex
from copilot.search.scope import AccessScope, ChunkAccess

log = logging.getLogger(__name__)


class AccessChangeRefused(ValueError):
    """The change asked for cannot be made; the message says why."""


class AccessUpdateFailed(RuntimeError):
    """An index refused the change; everything was put back as it was."""


@dataclass(frozen=True)
class AccessChange:
    file_id: uuid.UUID
    name: str
    before: Ownership
    after: Ownership
    chunks: int  # chunks whose tokens changed in each index (0 for a file not indexed)


def file_ownership(file: File) -> Ownership:
    return Ownership(
        file.owner_id,
        cast(FileScope, file.scope),
        file.department_id,
        cast(Classification, file.classification),
    )


def file_access(file: File) -> ChunkAccess:
    """A file row's access, as its chunks carry it in the indexes."""
    return file_ownership(file).access


async def set_file_access(
    kb: KnowledgeBase,
    file_id: uuid.UUID,
    *,
    scope: str | None = None,
    department_id: uuid.UUID | None = None,
    classification: str | None = None,
) -> AccessChange:
    """Give a file a new scope, department and/or classification (None keeps the current
    one; a department file without a department takes its owner's)."""
    if scope is not None and scope not in FILE_SCOPES:
        raise AccessChangeRefused(f"scope '{scope}' is not one of {', '.join(FILE_SCOPES)}")
    if classification is not None and classification not in CLASSIFICATIONS:
        raise AccessChangeRefused(
            f"classification '{classification}' is not one of {', '.join(CLASSIFICATIONS)}"
        )
    async with kb.sessions() as session:
        file = await session.get(File, file_id)
        if file is None:
            raise AccessChangeRefused(f"no file with id {file_id}")
        if file.status == "processing":
            raise AccessChangeRefused(
                f"{file.original_name} is being indexed right now; try again when it is ready"
            )
        if department_id is not None and await session.get(Department, department_id) is None:
            raise AccessChangeRefused(f"no department with id {department_id}")
        before = file_ownership(file)
        new_scope = cast(FileScope, scope or before.scope)
        department = department_id or before.department_id
        if new_scope == "department" and department is None:
            owner = await session.get(User, file.owner_id)
            department = owner.department_id if owner else None
        try:
            after = replace(
                before,
                scope=new_scope,
                department_id=department,
                classification=cast(Classification, classification or before.classification),
            )
        except ValueError as error:  # a department file needs a department
            raise AccessChangeRefused(f"{file.original_name}: {error}") from error
        _write_row(file, after)
        await session.commit()
        name, indexed, chunks = file.original_name, file.status == "ready", file.chunk_count

    if indexed:
        try:
            await _update_indexes(kb, str(file_id), before, after)
        except AccessUpdateFailed:
            async with kb.sessions() as session:
                _write_row(await session.get_one(File, file_id), before)
                await session.commit()
            raise
    return AccessChange(file_id, name, before, after, chunks if indexed else 0)


def _write_row(file: File, ownership: Ownership) -> None:
    file.scope = ownership.scope
    file.department_id = ownership.department_id
    file.classification = ownership.classification


async def _update_indexes(
    kb: KnowledgeBase, file_id: str, before: Ownership, after: Ownership
) -> None:
    indexes: tuple[KeywordIndex | VectorIndex, ...] = (kb.indexes.keyword, kb.indexes.vector)
    for step, index in enumerate(indexes):
        try:
            await index.update_access(file_id, after.access)
        except Exception as error:
            # The failing index may have changed some chunks: give all touched ones back.
            for touched in indexes[: step + 1]:
                try:
                    await touched.update_access(file_id, before.access)
                except Exception:
                    log.exception(
                        "could not restore the access of file %s in the %s index; "
                        "run `copilot reindex --file %s`",
                        file_id,
                        touched.name,
                        file_id,
                    )
            raise AccessUpdateFailed(
                f"the {index.name} index refused the access change ({error}); nothing was changed"
            ) from error


def readable_by(scope: AccessScope) -> ColumnElement[bool]:
    """The indexes' access rule as an SQL condition on `File`: the asker's own personal
    files, company files of a classification they hold, and their department's files of
    a classification they hold (the same rule as `AccessScope.allows`, inside the query)."""
    classifications = sorted(scope.classifications)
    rules = [
        and_(File.scope == "personal", File.owner_id == uuid.UUID(scope.user_id)),
        and_(File.scope == "company", File.classification.in_(classifications)),
    ]
    if scope.department_id is not None:
        rules.append(
            and_(
                File.scope == "department",
                File.department_id == uuid.UUID(scope.department_id),
                File.classification.in_(classifications),
            )
        )
    return or_(*rules)
