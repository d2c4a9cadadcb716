"""Hybrid retrieval: BM25 and vector search fused by weighted reciprocal rank.

LangChain's `EnsembleRetriever` runs both retrievers concurrently (`ainvoke`) and fuses
their rankings (score = sum of weight / (rank + c)), merging a chunk found by both engines
through `id_key="chunk_id"`. We extend it only to keep what it computes on the documents:
the fused score and each retriever's rank, which `copilot search --explain` shows.

Weights 0.6 / 0.4 and c=1 by measurement (`copilot bench retrieval --sweep` re-fuses one
run's rankings with 8 weights x 7 values of c): on COVID-QA with 128-token chunks, picked
on the even-numbered questions (nDCG@10 0.633 against BM25's 0.605), they give 0.644
against BM25's 0.622 on the odd-numbered ones; 0.638 against 0.613 on all 1,380 (+0.025;
the former 0.8 / 0.2, c=60, gave 0.617). A small c lets each engine's first hits count
most, which suits a strong BM25 beside a weaker vector model. With 256-token chunks no
setting got past +0.009 (best 0.8 / 0.2, c=5: 0.670 against 0.661).

Each retriever carries the asker's `AccessScope` into its engine's query. When an engine
fails, its retriever returns nothing and records the failure, so the ensemble still
answers from the other engine and says which one is missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_classic.retrievers import EnsembleRetriever
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from copilot.search.base import Hit, KeywordIndex, VectorIndex
from copilot.search.scope import AccessScope
from copilot.settings import Settings

log = logging.getLogger(__name__)

KEYWORD, VECTOR = "keyword", "vector"


@dataclass
class SearchReport:
    """What happened during one search: engines that failed, and time spent in each."""

    missing: dict[str, str] = field(default_factory=dict)  # engine name -> error
    timings_ms: dict[str, float] = field(default_factory=dict)


def hit_to_document(hit: Hit, retriever: str, rank: int) -> Document:
    # The chunk's language (ISO 639-1) where the engine stores it (the keyword indexes);
    # left out otherwise, so a vector hit's copy cannot blank the keyword hit's.
    language = hit.metadata.get("language")
    return Document(
        id=hit.chunk_id,
        page_content=hit.text,
        metadata={
            **({"language": language} if language else {}),
            "chunk_id": hit.chunk_id,
            "file_id": hit.file_id,
            "file_name": hit.file_name,
            "page": hit.page,
            "ordinal": hit.ordinal,
            f"{retriever}_score": hit.score,
            f"{retriever}_rank": rank,
        },
    )


class _IndexRetriever(BaseRetriever):
    """Shared part of the two retrievers: scope, k, and failure reporting."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    scope: AccessScope
    k: int
    report: SearchReport
    retriever_name: str = ""

    async def _hits(self, query: str) -> list[Hit]:
        raise NotImplementedError

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        start = time.perf_counter()
        try:
            hits = await self._hits(query)
        except Exception as error:  # one engine down must not fail the request
            log.warning("%s search failed: %s", self.retriever_name, error, exc_info=True)
            self.report.missing[self.retriever_name] = str(error)
            hits = []
        self.report.timings_ms[self.retriever_name] = (time.perf_counter() - start) * 1000
        return [hit_to_document(h, self.retriever_name, r) for r, h in enumerate(hits, 1)]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise NotImplementedError("Copilot's retrievers are async: use ainvoke")


class KeywordRetriever(_IndexRetriever):
    index: Any  # KeywordIndex
    retriever_name: str = KEYWORD

    async def _hits(self, query: str) -> list[Hit]:
        return await self.index.search(query, self.scope, self.k)


class VectorRetriever(_IndexRetriever):
    index: Any  # VectorIndex
    embeddings: Any  # Embeddings
    retriever_name: str = VECTOR

    async def _hits(self, query: str) -> list[Hit]:
        vector = await asyncio.to_thread(self.embeddings.embed_query, query)
        return await self.index.search(vector, self.scope, self.k)


class ScoredEnsembleRetriever(EnsembleRetriever):
    """EnsembleRetriever that keeps the fused score and every retriever's rank."""

    top_k: int = 8

    def weighted_reciprocal_rank(self, doc_lists: list[list[Document]]) -> list[Document]:
        fused = super().weighted_reciprocal_rank(doc_lists)
        details: dict[str, dict[str, Any]] = {}
        for weight, docs in zip(self.weights, doc_lists, strict=True):
            for rank, doc in enumerate(docs, 1):
                entry = details.setdefault(doc.metadata["chunk_id"], {"score": 0.0})
                entry["score"] += weight / (rank + self.c)
                entry.update(
                    {k: v for k, v in doc.metadata.items() if k.endswith(("_rank", "_score"))}
                )
        results = []
        for doc in fused[: self.top_k]:
            entry = details[doc.metadata["chunk_id"]]
            metadata = {**doc.metadata, **entry}
            metadata["fused_score"] = metadata.pop("score")
            results.append(Document(id=doc.id, page_content=doc.page_content, metadata=metadata))
        return results


@dataclass
class HybridSearch:
    """Builds, per request, the access-scoped ensemble over both indexes."""

    keyword: KeywordIndex
    vector: VectorIndex
    embeddings: Embeddings
    keyword_weight: float = 0.5
    vector_weight: float = 0.5
    c: int = 60
    fetch_k: int = 30
    k: int = 8

    @classmethod
    def from_settings(
        cls, settings: Settings, keyword: KeywordIndex, vector: VectorIndex, embeddings: Embeddings
    ) -> HybridSearch:
        return cls(
            keyword,
            vector,
            embeddings,
            settings.keyword_weight,
            settings.vector_weight,
            settings.rrf_c,
            settings.retrieval_fetch_k,
            settings.retrieval_k,
        )

    #: The names a `SearchReport` gives this search's engines.
    engines: ClassVar[tuple[str, str]] = (KEYWORD, VECTOR)

    def retriever(
        self, scope: AccessScope, report: SearchReport | None = None, k: int | None = None
    ) -> ScoredEnsembleRetriever:
        report = report if report is not None else SearchReport()
        fetch = max(self.fetch_k, k or 0)
        return ScoredEnsembleRetriever(
            retrievers=[
                KeywordRetriever(index=self.keyword, scope=scope, k=fetch, report=report),
                VectorRetriever(
                    index=self.vector,
                    embeddings=self.embeddings,
                    scope=scope,
                    k=fetch,
                    report=report,
                ),
            ],
            weights=[self.keyword_weight, self.vector_weight],
            c=self.c,
            id_key="chunk_id",
            top_k=k or self.k,
        )

    async def search(
        self, query: str, scope: AccessScope, k: int | None = None
    ) -> tuple[list[Document], SearchReport]:
        report = SearchReport()
        start = time.perf_counter()
        documents = await self.retriever(scope, report, k).ainvoke(query)
        report.timings_ms["total"] = (time.perf_counter() - start) * 1000
        return documents, report
