"""A file's tags: set on its row, then on its chunks in both indexes.

Tags are labels a search may filter on (`copilot search --tag`), from a data source's
folder path or set by an admin. The indexes carry them with every chunk, so a change is
written to the row first and then reaches the indexes by re-indexing the file from its
stored original (`reindex`; its chunks are embedded again: tag changes are rare, and no
index needs a second in-place update path). The index generation is bumped by `reindex`,
so no cached search result keeps the old tags.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from copilot.db.models import File
from copilot.knowledge.ingest import reindex
from copilot.knowledge.knowledge_base import KnowledgeBase

MAX_TAG_CHARS = 100
MAX_TAGS = 50


class TagsRefused(ValueError):
    """Tags that cannot be stored: the message names the problem."""


def clean_tags(tags: Sequence[str]) -> list[str]:
    """The tags as stored: stripped, without repeats, in the order given."""
    cleaned = list(dict.fromkeys(tag.strip() for tag in tags))
    if "" in cleaned:
        raise TagsRefused("a tag must not be blank")
    if too_long := [tag for tag in cleaned if len(tag) > MAX_TAG_CHARS]:
        raise TagsRefused(f"a tag has at most {MAX_TAG_CHARS} characters: {too_long[0][:40]}…")
    if len(cleaned) > MAX_TAGS:
        raise TagsRefused(f"a file has at most {MAX_TAGS} tags, not {len(cleaned)}")
    return cleaned


async def set_file_tags(kb: KnowledgeBase, file_id: uuid.UUID, tags: Sequence[str]) -> list[str]:
    """Give the file `tags` (replacing its own) in the database, then in both indexes."""
    cleaned = clean_tags(tags)
    async with kb.sessions() as session:
        file = await session.get(File, file_id)
        if file is None:
            raise TagsRefused(f"no file with id {file_id}")
        file.tags = cleaned
        await session.commit()
        ready = file.status == "ready"
    # A file waiting to be ingested is indexed with the row's tags; one being ingested
    # right now keeps those it was claimed with (`copilot reindex --file` after it).
    if ready:
        await reindex(kb, file_id)
    return cleaned
