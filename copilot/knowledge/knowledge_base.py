"""Everything ingestion and search need, opened once from settings: the database sessions,
the embedding model, the chunker, both search indexes, and the index generation that
every change to them bumps (it retires cached search results, copilot.state.query_cache)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.db.models import SearchIndexState
from copilot.knowledge.chunking import Chunker
from copilot.knowledge.embeddings import EmbeddingProvider, create_embeddings
from copilot.knowledge.locations import ChunkLocations
from copilot.search.ensemble import HybridSearch, RetrievalCache
from copilot.search.factory import SearchIndexes, open_indexes
from copilot.settings import Settings
from copilot.state.query_cache import LocalGeneration

log = logging.getLogger(__name__)


class Generation(Protocol):
    """The number of changes the indexes have seen (copilot.state.query_cache)."""

    async def bump(self) -> int: ...

    async def current(self) -> int: ...


class EmbeddingModelChanged(RuntimeError):
    """The indexes hold vectors of another model; mixing them would make search meaningless."""


@dataclass
class KnowledgeBase:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    embeddings: EmbeddingProvider
    indexes: SearchIndexes
    chunker: Chunker
    search: HybridSearch
    generation: Generation = field(default_factory=LocalGeneration)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        embeddings: EmbeddingProvider | None = None,
        indexes: SearchIndexes | None = None,
        allow_model_change: bool = False,
        generation: Generation | None = None,
        cache: RetrievalCache | None = None,
    ) -> KnowledgeBase:
        """`generation` is shared by every process (the composition root gives the Redis
        one); `cache` answers repeated searches (used only if settings allow it)."""
        embeddings = embeddings or create_embeddings(settings)
        if not allow_model_change:
            async with sessions() as session:
                await check_embedding_model(session, embeddings)
        indexes = indexes or open_indexes(settings, embeddings.info.dimension)
        count_tokens = getattr(embeddings, "count_tokens", None) or _approximate_tokens
        chunker = Chunker(
            count_tokens,
            settings.chunk_size,
            settings.chunk_overlap,
            chars=settings.chunk_chars,
            max_tokens=settings.chunk_max_tokens,
        )
        search = HybridSearch.from_settings(
            settings, indexes.keyword, indexes.vector, embeddings, cache
        )
        return cls(
            settings,
            sessions,
            embeddings,
            indexes,
            chunker,
            search,
            generation or LocalGeneration(),
        )

    async def indexes_changed(self) -> None:
        """Called once a change to the indexes is written (or a failed write may have
        changed them): every cached search result from before is stale from now on."""
        try:
            await self.generation.bump()
        except Exception:
            log.exception(
                "the index generation could not be bumped: cached search results "
                "from before this change may be served until their TTL ends"
            )

    @property
    def locations(self) -> ChunkLocations:
        """Looks up where retrieved chunks are, for citations (the chain is given it)."""
        return ChunkLocations(self.sessions)

    async def close(self) -> None:
        await self.indexes.close()


def _approximate_tokens(text: str) -> int:
    """For remote embedding models whose tokenizer we do not have: ~4 characters a token."""
    return max(1, len(text) // 4)


async def check_embedding_model(session: AsyncSession, embeddings: EmbeddingProvider) -> None:
    """Record the model on first use; refuse a different one afterwards."""
    state = await session.get(SearchIndexState, 1)
    info = embeddings.info
    if state is None:
        session.add(SearchIndexState(id=1, embedding_model=info.name, dimension=info.dimension))
        await session.commit()
        return
    if (state.embedding_model, state.dimension) != (info.name, info.dimension):
        raise EmbeddingModelChanged(
            f"the search indexes were built with {state.embedding_model} ({state.dimension} "
            f"dimensions) but the settings name {info.name} ({info.dimension} dimensions): "
            f"{_why_vectors_differ(state.embedding_model, info.name)}"
            "run `copilot reindex --all` to rebuild them with the new model"
        )


def _why_vectors_differ(recorded: str, configured: str) -> str:
    """Why a rebuild is needed even when the model looks the same (the torch -> ONNX move)."""
    if "all-MiniLM-L6-v2" in recorded and "all-MiniLM-L6-v2" in configured:
        return (
            "all-MiniLM-L6-v2 with int8 weights on ONNX Runtime (the local provider, the "
            "default since the move off torch) and with fp32 weights on torch "
            "(COPILOT_EMBEDDING_PROVIDER=torch, the torch extra) give close vectors (cosine "
            "~0.9995) but not equal ones, and an index never mixes two models' vectors; "
            "switch the provider back, or "
        )
    return "vectors of two models cannot be compared; "


async def record_embedding_model(session: AsyncSession, embeddings: EmbeddingProvider) -> None:
    state = await session.scalar(select(SearchIndexState).where(SearchIndexState.id == 1))
    if state is None:
        state = SearchIndexState(id=1)
        session.add(state)
    state.embedding_model = embeddings.info.name
    state.dimension = embeddings.info.dimension
    await session.commit()
