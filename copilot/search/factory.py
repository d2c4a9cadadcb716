"""The one place a search backend is chosen: a URL in settings means the production engine,
no URL means the embedded engine under the data dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from copilot.search.base import KeywordIndex, VectorIndex
from copilot.settings import Settings


@dataclass
class SearchIndexes:
    keyword: KeywordIndex
    vector: VectorIndex

    async def close(self) -> None:
        await self.keyword.close()
        await self.vector.close()


def open_keyword_index(settings: Settings) -> KeywordIndex:
    if settings.elasticsearch_url:
        from copilot.search.keyword_elasticsearch import ElasticsearchKeywordIndex

        return ElasticsearchKeywordIndex.from_url(
            settings.elasticsearch_url,
            settings.elasticsearch_api_key or None,
            index=settings.elasticsearch_index,
        )
    from copilot.search.generations import EmbeddedGenerations
    from copilot.search.keyword_embedded import EmbeddedKeywordIndex

    return EmbeddedGenerations(
        settings.ensure_data_dir(), "keyword", "keyword-index", EmbeddedKeywordIndex
    )


def open_vector_index(settings: Settings, dimension: int) -> VectorIndex:
    if settings.weaviate_url:
        from copilot.search.vector_weaviate import WeaviateVectorIndex

        return WeaviateVectorIndex.from_url(
            settings.weaviate_url,
            settings.weaviate_grpc_port,
            settings.weaviate_api_key or None,
            collection=settings.weaviate_collection,
            dimension=dimension,
        )
    from copilot.search.generations import EmbeddedGenerations
    from copilot.search.vector_embedded import EmbeddedVectorIndex

    def open_generation(folder: Path) -> VectorIndex:
        return EmbeddedVectorIndex(folder, dimension)

    return EmbeddedGenerations(
        settings.ensure_data_dir(), "vectors", "vector-index", open_generation
    )


def open_indexes(settings: Settings, dimension: int) -> SearchIndexes:
    return SearchIndexes(open_keyword_index(settings), open_vector_index(settings, dimension))
