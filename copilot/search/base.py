"""The two small protocols every search engine implements, and the records they exchange.

A keyword index (BM25) and a vector index each take chunks, delete them by file, change a
file's access in place (new tokens, same text and vectors: nothing is re-embedded), and
search under an `AccessScope`. Production engines (Elasticsearch, Weaviate) and embedded
ones (under the data dir) implement the same protocols; `copilot.search.factory` picks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec, Protocol, TypeVar, runtime_checkable

from copilot.search.scope import ACCESS_FIELD, AccessScope, ChunkAccess

#: The multi-valued keyword field every engine stores a chunk's tags in; a search given
#: tags keeps the chunks holding any of them (one "any of" clause inside the query).
TAGS_FIELD = "tags"


def search_tags(tags: Collection[str] | None) -> list[str]:
    """The tags a search filters on, in a stable order (empty: no tag filter). A blank
    tag is refused: it would match nothing and look like a filter that works."""
    cleaned = sorted({tag.strip() for tag in tags or ()})
    if "" in cleaned:
        raise ValueError("a tag to search for must not be blank")
    return cleaned


@dataclass(frozen=True)
class IndexedChunk:
    """A chunk as the indexes store it: its text, where it comes from, and who may read it."""

    chunk_id: str
    file_id: str
    file_name: str
    ordinal: int
    page: int | None
    text: str
    access: ChunkAccess
    vector: Sequence[float] | None = None  # vector indexes require it
    language: str | None = None  # ISO 639-1 code of the text, for language-aware analysis
    tags: tuple[str, ...] = ()  # the file's labels: an exact-match field a search may filter on


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk id, the engine's score (higher is better) and metadata."""

    chunk_id: str
    score: float
    file_id: str
    file_name: str
    page: int | None
    ordinal: int
    text: str
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str
    latency_ms: float


class SearchIndexError(RuntimeError):
    """An index operation failed; `index` names which one (for the user's error message)."""

    def __init__(self, index: str, message: str) -> None:
        super().__init__(f"{index}: {message}")
        self.index = index


P = ParamSpec("P")
R = TypeVar("R")


async def run_blocking(
    engine: str, action: str, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run an embedded engine's blocking call in a thread; its errors name the engine."""
    try:
        return await asyncio.to_thread(work, *args, **kwargs)
    except SearchIndexError:
        raise
    except Exception as error:  # engines raise ValueError, RuntimeError, OSError...
        raise SearchIndexError(engine, f"{action} failed: {error}") from error


@runtime_checkable
class KeywordIndex(Protocol):
    """BM25 search over chunk text."""

    name: str

    async def add(self, chunks: Sequence[IndexedChunk]) -> None: ...

    async def delete_file(self, file_id: str) -> None: ...

    async def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        """Remove these chunks (a file's superseded version); ids not here are no error."""
        ...

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        """Give every chunk of the file `access` (its tokens and metadata; its text, vector
        and tags stay); searchable once this returns. A file with no chunks here is not an
        error."""
        ...

    async def clear(self) -> None:
        """Remove every chunk (before a full rebuild from the database)."""
        ...

    async def search(
        self, query: str, scope: AccessScope, k: int, tags: Sequence[str] = ()
    ) -> list[Hit]:
        """The top k readable chunks for `query`; with `tags`, only chunks holding any of
        them (filtered inside the engine's query, as access is)."""
        ...

    async def count(self, file_id: str | None = None) -> int: ...

    async def health(self) -> Health: ...

    async def close(self) -> None: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest-neighbour search over chunk embeddings (cosine similarity)."""

    name: str

    async def add(self, chunks: Sequence[IndexedChunk]) -> None: ...

    async def delete_file(self, file_id: str) -> None: ...

    async def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        """Remove these chunks (a file's superseded version); ids not here are no error."""
        ...

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        """Give every chunk of the file `access` (its tokens and metadata; its text, vector
        and tags stay); searchable once this returns. A file with no chunks here is not an
        error."""
        ...

    async def clear(self) -> None:
        """Remove every chunk (before a full rebuild from the database)."""
        ...

    async def search(
        self, vector: Sequence[float], scope: AccessScope, k: int, tags: Sequence[str] = ()
    ) -> list[Hit]:
        """The k nearest readable chunks; with `tags`, only chunks holding any of them."""
        ...

    async def count(self, file_id: str | None = None) -> int: ...

    async def health(self) -> Health: ...

    async def close(self) -> None: ...


IndexT = TypeVar("IndexT", bound=KeywordIndex | VectorIndex)


@runtime_checkable
class Rebuildable(Protocol[IndexT]):
    """An index that can be rebuilt beside the live one (`copilot reindex --all`): search
    answers from the live index until `switch_to`, and a discarded rebuild leaves it as it
    was. Writes to the live index reach the rebuilt one too until it is switched or
    discarded, in every process, so nothing uploaded meanwhile is lost."""

    async def begin_rebuild(self) -> IndexT:
        """A new, empty index beside the live one, to fill from the database."""
        ...

    async def switch_to(self, rebuilt: IndexT) -> None:
        """Make `rebuilt` the live index at once, then remove the old one."""
        ...

    async def discard(self, rebuilt: IndexT) -> None:
        """Remove `rebuilt`; the live index stays as it is."""
        ...


def outdated_index(engine: str, missing: Collection[str]) -> SearchIndexError:
    """An index built with an older schema (it lacks the fields in `missing`): searching it
    would silently find nothing (no access tokens) or analyse text the old way."""
    if ACCESS_FIELD in missing:
        reason = "before chunks carried access tokens"
    else:
        reason = f"with an older schema (it lacks {', '.join(sorted(missing))})"
    return SearchIndexError(
        engine, f"the index was built {reason}; run `copilot reindex --all` to rebuild it"
    )


def built_without_access_tokens(engine: str) -> SearchIndexError:
    """An index from before access tokens: searching it would silently find nothing."""
    return outdated_index(engine, {ACCESS_FIELD})
