"""A file's tags, as an admin sets them: the row first (PostgreSQL is the truth), then the
tags of its chunks in both indexes.

Indexes that change a file's tags in place (`TaggedIndex`) do it as an access change is
made (`copilot.knowledge.access`): nothing parsed or embedded again, and if one refuses,
both indexes and the row get the old tags back and the error names the index. Others get
the file's chunks rebuilt from its row, as `copilot reindex --file` does; if that fails,
the row gets its old tags back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from copilot.db.models import File
from copilot.knowledge.access import change_each_index
from copilot.knowledge.ingest import reindex
from copilot.knowledge.knowledge_base import KnowledgeBase

MAX_TAGS = 20
MAX_TAG_CHARS = 64
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class TagsRefused(ValueError):
    """The tags asked for cannot be set; the message says why."""


class TagsUpdateFailed(RuntimeError):
    """An index refused the change; everything was put back as it was."""


@runtime_checkable
class TaggedIndex(Protocol):
    """An index whose chunks carry their file's tags, changed in place."""

    name: str

    async def update_tags(self, file_id: str, tags: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class TagsChange:
    file_id: uuid.UUID
    name: str
    before: list[str]
    after: list[str]


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Tags as stored: trimmed, blanks dropped, each once (first spelling kept, compared
    without case); refused when one is too long or unprintable, or there are too many."""
    kept: dict[str, str] = {}
    for raw in tags:
        tag = raw.strip()
        if not tag:
            continue
        if _UNPRINTABLE.search(tag):
            raise TagsRefused(f"tag {tag!r} contains a control character")
        if len(tag) > MAX_TAG_CHARS:
            raise TagsRefused(f"tag '{tag[:20]}…' is longer than {MAX_TAG_CHARS} characters")
        kept.setdefault(tag.casefold(), tag)
    if len(kept) > MAX_TAGS:
        raise TagsRefused(f"{len(kept)} tags given; a file holds at most {MAX_TAGS}")
    return list(kept.values())


async def set_tags(kb: KnowledgeBase, file_id: uuid.UUID, tags: Iterable[str]) -> TagsChange:
    """Give a file exactly these tags, in the database and in both indexes."""
    after = clean_tags(tags)
    async with kb.sessions() as session:
        file = await session.get(File, file_id)
        if file is None:
            raise TagsRefused(f"no file with id {file_id}")
        if file.status == "processing":
            raise TagsRefused(
                f"{file.original_name} is being indexed right now; try again when it is ready"
            )
        before = list(file.tags or [])
        file.tags = after
        await session.commit()
        name, indexed = file.original_name, file.status == "ready"
    if indexed and after != before:
        try:
            await _update_indexes(kb, str(file_id), before, after)
        except TagsUpdateFailed:
            async with kb.sessions() as session:
                (await session.get_one(File, file_id)).tags = before
                await session.commit()
            raise
    return TagsChange(file_id, name, before, after)


async def _update_indexes(
    kb: KnowledgeBase, file_id: str, before: list[str], after: list[str]
) -> None:
    indexes = (kb.indexes.keyword, kb.indexes.vector)
    if all(isinstance(index, TaggedIndex) for index in indexes):
        await change_each_index(
            [cast(TaggedIndex, index) for index in indexes],
            lambda index: index.update_tags(file_id, after),
            lambda index: index.update_tags(file_id, before),
            file_id=file_id,
            what="tag",
            failure=TagsUpdateFailed,
        )
        return
    # Indexes that change no tags in place get the file's chunks again, built from its row
    # (the path `copilot reindex --file` takes; it embeds the file's chunks again).
    try:
        await reindex(kb, uuid.UUID(file_id))
    except Exception as error:
        raise TagsUpdateFailed(
            f"the indexes could not take the new tags ({error}); the file keeps its old tags; "
            f"run `copilot reindex --file {file_id}` when the indexes are reachable"
        ) from error
