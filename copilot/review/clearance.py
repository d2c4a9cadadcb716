"""Which knowledge files an admin may read: the search rule, plus their reach's personal files.

An admin reads a file's text (on the file page, or quoted in the answers and snippets of
the conversations they review) under the same rule as their own search: their
`AccessScope` (their own personal files; company and their department's files within
their clearance). Personal files of the people in their reach are added only where
`admin_can_read_personal_files` allows it, and still within their clearance.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import File, User
from copilot.review.reach import Reach
from copilot.search.scope import ChunkAccess
from copilot.users import Principal

ABOVE_CLEARANCE = "[redacted: cites a file above your clearance]"
NOT_READABLE = "[redacted: cites a file you may not read]"
GONE = "[redacted: cites a file that no longer exists]"


@dataclass(frozen=True)
class FileFacts:
    """A file's access fields, and the department of its owner (for the reach)."""

    file_id: str
    owner_id: str
    owner_department_id: str | None
    scope: str
    department_id: str | None
    classification: str


@dataclass(frozen=True)
class Clearance:
    principal: Principal
    reach: Reach
    personal_files: bool  # admin_can_read_personal_files

    @classmethod
    def of_reader(cls, principal: Principal) -> Clearance:
        """Someone reading, not reviewing (a colleague's shared chat, one's own export):
        the search rule alone, with no reach and no one else's personal files."""
        return cls(principal, Reach(everyone=False), personal_files=False)

    def may_read(self, file: FileFacts) -> bool:
        access = ChunkAccess(file.owner_id, file.scope, file.department_id, file.classification)
        if self.principal.scope.allows(access):
            return True
        return (
            self.personal_files
            and file.scope == "personal"
            and file.classification in self.principal.classifications
            and self.reach.includes(_uuid(file.owner_department_id))
        )

    def refusal_note(self, file: FileFacts | None) -> str | None:
        """None when the file may be read; otherwise the visible note that replaces it."""
        if file is None:
            return GONE
        if self.may_read(file):
            return None
        if file.classification not in self.principal.classifications:
            return ABOVE_CLEARANCE
        return NOT_READABLE

    def redact(
        self, content: str, sources: list[dict[str, Any]], facts: dict[str, FileFacts]
    ) -> tuple[str, list[dict[str, Any]]]:
        """An answer and its sources as this reviewer may see them.

        A source they may not read shows the note instead of its file and snippet; and as
        the answer quotes its sources, an answer with any such source shows the note too.
        """
        notes: list[str] = []
        shown: list[dict[str, Any]] = []
        for found in sources:
            note = self.refusal_note(facts.get(str(found.get("file_id", ""))))
            if note is None:
                shown.append(found)
                continue
            notes.append(note)
            shown.append(
                {
                    "number": found.get("number"),
                    "cited": found.get("cited"),
                    "file_name": note,
                    "page": None,
                    "score": None,
                    "snippet": note,
                    "redacted": True,
                }
            )
        if notes:
            content = ABOVE_CLEARANCE if ABOVE_CLEARANCE in notes else notes[0]
        return content, shown

    def readable(self, owner_department: Any) -> ColumnElement[bool]:
        """`may_read` as SQL on `File` joined to its owner (`owner_department` column)."""
        cleared = File.classification.in_(sorted(self.principal.classifications))
        department = _uuid(self.principal.department_id)
        own_department = (
            and_(File.scope == "department", File.department_id == department)
            if department
            else false()
        )
        conditions = [
            and_(File.scope == "personal", File.owner_id == uuid.UUID(self.principal.user_id)),
            and_(cleared, or_(File.scope == "company", own_department)),
        ]
        if self.personal_files:
            conditions.append(
                and_(File.scope == "personal", cleared, self.reach.covers(owner_department))
            )
        return or_(*conditions)


def source_file_ids(sources: Iterable[dict[str, Any]]) -> set[str]:
    return {str(found.get("file_id", "")) for found in sources}


def _uuid(value: str | uuid.UUID | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(value)


def facts_of(file: File, owner_department_id: uuid.UUID | None) -> FileFacts:
    return FileFacts(
        str(file.id),
        str(file.owner_id),
        str(owner_department_id) if owner_department_id else None,
        file.scope,
        str(file.department_id) if file.department_id else None,
        file.classification,
    )


async def file_facts(session: AsyncSession, file_ids: Iterable[str]) -> dict[str, FileFacts]:
    """The access fields of these files, in one query (ids that are not files are left out)."""
    wanted = set()
    for file_id in file_ids:
        try:
            wanted.add(uuid.UUID(str(file_id)))
        except ValueError:
            continue  # not an id: treated as a file that does not exist
    if not wanted:
        return {}
    rows = await session.execute(
        select(File, User.department_id)
        .join(User, User.id == File.owner_id)
        .where(File.id.in_(sorted(wanted)))
    )
    return {str(file.id): facts_of(file, department) for file, department in rows.all()}
