"""Context for the answer: the chunks just before and after the top hits, read from the
database (the chunks table is the truth for chunk text).

A 128-token chunk often starts or ends inside the sentence that answers, and the answer
then quotes half of it. Each of the first `hits` sources gets from its neighbours (ordinal
- 1 and + 1 of the same file) the sentence it starts or ends inside, or the one sentence
before and after it when it starts and ends with whole ones, the overlap the chunker
repeats removed, within `max_characters` added in all. Only a sentence each side: whole
neighbouring chunks give the extractive answerer more loosely related sentences to pick
from, for no better answers (measured in the README's `bench answer` section).

Honest citations: a neighbour is joined only when its row has the hit's page and location
(heading path, slide, rows; or neither has one), so the citation, which names the hit's
file and place, stays true of every sentence in it; a neighbour elsewhere is left out. A
neighbour that is itself among the sources is not repeated.

Access: a neighbour is read only from a file whose row the asker's scope allows, checked
on the row (the same rule the indexes filter by), not inferred from the hit, so a file
whose access changed since it was indexed lends nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.documents import Document
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.db.models import Chunk, File
from copilot.knowledge.access import file_access
from copilot.search.scope import AccessScope

#: Shortest repeated text taken for the chunker's overlap rather than a coincidence.
_MIN_OVERLAP = 8
# Where one sentence ends and the next starts; an abbreviation ("et al. 2012") may end one
# early, which only means less context.
_SENTENCE_BREAK = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class NeighbourContext:
    """Joins each top source's neighbouring chunks (same file and page) to its text."""

    sessions: async_sessionmaker[AsyncSession]
    hits: int = 3
    max_characters: int = 2400

    async def expand(self, documents: Sequence[Document], scope: AccessScope) -> list[Document]:
        """The documents, the first `hits` of them with their neighbours' text joined."""
        present = {_position(d) for d in documents} - {None}
        wanted: dict[tuple[uuid.UUID, int], int] = {}  # (file, ordinal) -> hit index
        for index, document in enumerate(documents[: self.hits]):
            position = _position(document)
            if position is None:
                continue
            file_id, ordinal = position
            for neighbour in (ordinal - 1, ordinal + 1):
                if (file_id, neighbour) not in present and neighbour >= 0:
                    wanted.setdefault((file_id, neighbour), index)
        if not wanted:
            return list(documents)
        hits = {p for d in documents[: self.hits] if (p := _position(d)) is not None}
        rows = await self._readable_chunks([*wanted, *hits], scope)

        expanded = list(documents)
        budget = self.max_characters
        for index, document in enumerate(documents[: self.hits]):
            position = _position(document)
            if position is None:
                continue
            file_id, ordinal = position
            own = rows.get(position)  # the hit's own row: its place, and that it is readable
            if own is None:
                continue
            before = rows.get((file_id, ordinal - 1))
            after = rows.get((file_id, ordinal + 1))
            text, joined = document.page_content, []
            for chunk, is_before in ((before, True), (after, False)):
                if (
                    chunk is None
                    or (chunk.page, chunk.location) != (own.page, own.location)
                    or wanted.get((file_id, chunk.ordinal)) != index
                ):
                    continue
                added = (
                    _sentence_before(chunk.text, text)
                    if is_before
                    else _sentence_after(text, chunk.text)
                )
                if not added.strip() or len(added) > budget:
                    continue
                text = added + text if is_before else text + added
                budget -= len(added)
                joined.append(str(chunk.id))
            if joined:
                metadata = {**document.metadata, "context_chunk_ids": joined}
                expanded[index] = Document(id=document.id, page_content=text, metadata=metadata)
        return expanded

    async def _readable_chunks(
        self, positions: list[tuple[uuid.UUID, int]], scope: AccessScope
    ) -> dict[tuple[uuid.UUID, int], Chunk]:
        """The chunks at these positions whose file the scope may read, by position."""
        query = (
            select(Chunk, File)
            .join(File, Chunk.file_id == File.id)
            .where(File.status == "ready")
            .where(or_(*(and_(Chunk.file_id == f, Chunk.ordinal == o) for f, o in positions)))
        )
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return {
            (chunk.file_id, chunk.ordinal): chunk
            for chunk, file in rows
            if scope.allows(file_access(file))
        }


def _position(document: Document) -> tuple[uuid.UUID, int] | None:
    """A source's file and ordinal, when the engine reported both."""
    file_id, ordinal = document.metadata.get("file_id"), document.metadata.get("ordinal")
    if file_id is None or ordinal is None:
        return None
    try:
        return uuid.UUID(str(file_id)), int(ordinal)
    except ValueError:
        return None


def _sentence_before(previous: str, text: str) -> str:
    """The text to put before `text`: the last sentence (or sentence part) of the chunk
    before it, without the overlap, with the separator that joins them."""
    added, separator = _apart(previous, text)
    starts = [match.end() for match in _SENTENCE_BREAK.finditer(added)]
    return added[starts[-1] if starts else 0 :] + separator


def _sentence_after(text: str, following: str) -> str:
    """The text to put after `text`: the first sentence (or sentence part) of the chunk
    after it, without the overlap, with the separator that joins them."""
    head, separator = _apart(text, following, keep="second")
    match = _SENTENCE_BREAK.search(head)
    return separator + (head[: match.start() + len(match.group().rstrip())] if match else head)


def _apart(first: str, second: str, keep: str = "first") -> tuple[str, str]:
    """What `keep` (first or second of two consecutive chunks) adds to the other, the
    chunker's overlap removed, and the separator between the two."""
    longest = min(len(first), len(second))
    for size in range(longest, _MIN_OVERLAP - 1, -1):
        if first.endswith(second[:size]):
            return (first[:-size], "") if keep == "first" else (second[size:], "")
    # No overlap: the chunker cut at a separator it stripped. A lowercase start continues a
    # sentence cut between words; anything else may start a paragraph or follow a heading.
    separator = " " if second[:1].islower() else "\n"
    return (first, separator) if keep == "first" else (second, separator)
