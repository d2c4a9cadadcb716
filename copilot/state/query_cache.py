"""Retrieval results kept in Redis, and the index generation that makes them stale.

`IndexGeneration` is one Redis counter (`index:generation`). Everything that changes what
the indexes hold (an ingest, a delete, an access or tag change, a reindex, a sync) bumps
it once the change is written, through `KnowledgeBase.indexes_changed`; every process
shares it, so the web app's cache goes stale when `copilot ingest` or a sync runs beside it.

`QueryCache` stores each search's fused documents under `query:<key>` (the key digests the
question, k, language, tags, the asker's access tokens and the fusion settings, see
`HybridSearch.cache_key`) together with the generation read before the search ran. An
entry is served only while that is still the current generation, so nothing deleted or
superseded is served from it: one `MGET` reads the counter and the entry together.

Two races are closed: a search that ran while an index changed is kept under the older
generation, which the bump retires; and for `SETTLE_SECONDS` after a bump nothing is
kept, because another process's embedded index may still search its previous snapshot
(tantivy and LanceDB pick up other processes' commits within a second). Answers still
pass the database check (`ChunkLocations`) after a hit, as after a search.

Redis failing is not the user's problem: a lookup or a store that fails is logged and the
search runs uncached. A bump that fails is logged as an error (entries then live out
their TTL); the index change itself has happened and is not undone.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

GENERATION_KEY = "index:generation"
BUMPED_AT_KEY = "index:generation:bumped_at"
ENTRY_PREFIX = "query:"
#: After a bump, how long no result is kept: longer than the embedded engines take to
#: see another process's commit (REFRESH_SECONDS in keyword_embedded, vector_embedded).
SETTLE_SECONDS = 2.0


class IndexGeneration:
    """The shared counter of index changes; `bump` after every change is written."""

    def __init__(self, client: Redis) -> None:
        self._client = client

    async def bump(self) -> int:
        """The next generation, and when it began (for `SETTLE_SECONDS`)."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(GENERATION_KEY)
            pipe.set(BUMPED_AT_KEY, repr(time.time()))
            generation, _ = await pipe.execute()
        return int(generation)

    async def current(self) -> int:
        value = await self._client.get(GENERATION_KEY)
        return int(value or 0)


class LocalGeneration:
    """A counter in this process, for a knowledge base opened without Redis (tests, tools
    that never serve cached results): it keeps the `bump` calls honest, shares nothing."""

    def __init__(self) -> None:
        self.value = 0

    async def bump(self) -> int:
        self.value += 1
        return self.value

    async def current(self) -> int:
        return self.value


def _encode(generation: int, documents: list[Document]) -> str:
    return json.dumps(
        {
            "generation": generation,
            "documents": [
                {"id": d.id, "page_content": d.page_content, "metadata": d.metadata}
                for d in documents
            ],
        },
        ensure_ascii=False,
    )


def _decode(raw: bytes | str) -> tuple[int, list[Document]]:
    entry: dict[str, Any] = json.loads(raw)
    documents = [
        Document(id=d["id"], page_content=d["page_content"], metadata=d["metadata"])
        for d in entry["documents"]
    ]
    return int(entry["generation"]), documents


@dataclass
class CacheLookup:
    """What `QueryCache.lookup` found; `keep` stores a result computed instead."""

    cache: QueryCache | None
    key: str
    generation: int
    documents: list[Document] | None = None
    storable: bool = False

    async def keep(self, documents: list[Document]) -> None:
        if self.cache is not None and self.storable:
            await self.cache.store(self.key, self.generation, documents)


@dataclass
class CacheCounts:
    """Lookups answered and missed since this process started (for benches and logs)."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class QueryCache:
    """`RetrievalCache` on Redis: entries under `query:<key>`, valid for one generation."""

    def __init__(
        self, client: Redis, ttl_seconds: int, *, settle_seconds: float = SETTLE_SECONDS
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"the query cache TTL must be positive, not {ttl_seconds}")
        self._client = client
        self._ttl = ttl_seconds
        self._settle = settle_seconds
        self.counts = CacheCounts()

    async def lookup(self, key: str) -> CacheLookup:
        entry_key = ENTRY_PREFIX + key
        try:
            generation, bumped_at, raw = await self._client.mget(
                GENERATION_KEY, BUMPED_AT_KEY, entry_key
            )
        except RedisError as error:
            log.warning("query cache lookup failed, searching uncached: %s", error)
            return CacheLookup(None, entry_key, 0)
        current = int(generation or 0)
        settled = time.time() - float(bumped_at or 0) >= self._settle
        found = CacheLookup(self, entry_key, current, storable=settled)
        if raw is not None:
            try:
                kept_at, documents = _decode(raw)
            except (ValueError, KeyError, TypeError) as error:
                log.warning("dropping an unreadable query cache entry %s: %s", entry_key, error)
                kept_at, documents = -1, []
            if kept_at == current:
                found.documents = documents
        if found.documents is None:
            self.counts.misses += 1
        else:
            self.counts.hits += 1
        return found

    async def store(self, key: str, generation: int, documents: list[Document]) -> None:
        try:
            await self._client.set(key, _encode(generation, documents), ex=self._ttl)
        except RedisError as error:
            log.warning("query cache store failed: %s", error)
