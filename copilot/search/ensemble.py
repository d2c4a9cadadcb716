"""Hybrid retrieval: BM25 and vector search, fused by score (or by rank).

LangChain's `EnsembleRetriever` runs both retrievers concurrently (`ainvoke`) and merges a
chunk found by both engines through `id_key="chunk_id"`. We override only its fusion hook:
a convex combination of each engine's normalised scores (default) or LangChain's weighted
reciprocal rank fusion (`COPILOT_FUSION=rrf`), both in `copilot.search.fusion`, and we keep
on each document the fused score and each retriever's rank and score (`--explain`).

Chosen by `copilot bench retrieval --sweep` (72 settings re-fused from one run's rankings,
picked on the even-numbered questions, read on the odd-numbered ones). COVID-QA, 128-token
chunks, all 1,380 questions: convex z-score 0.6 / 0.4 was best on half A (nDCG@10 0.644)
and gives 0.649 on half B, against RRF 0.6 / 0.4 c=1 (the former default) 0.644 and BM25
0.622; on all questions 0.647 (RRF 0.638, BM25 0.613, vector 0.453). Convex keeps how far
apart the hits are, which ranks ignore (Bruch et al. 2023 found the same when tuned). With
the keyword index's bigram boost the same setting wins again: 0.663 (half B 0.666) against
keyword 0.631; MRR@10 0.618, R@10 0.811 (the issue's targets, 0.65 and 0.88, are not met).

The vector weight depends on the question's language (`FusionWeights`): all-MiniLM-L6-v2
reads English only, so a question in another language is ranked by keyword search, with
the vector's other hits after it: fusion cannot make it worse than keyword search alone.

Each retriever carries the asker's `AccessScope` (and any tags searched for) into its
engine's query. When an engine fails, its retriever returns nothing and records the
failure, so the ensemble still answers from the other engine and says which one is missing.

With a `RetrievalCache` (copilot.state.query_cache) a repeated search is answered from
Redis: the key holds everything the result depends on (question, k, language, tags, the
asker's access tokens, the fusion settings), the cache itself the index generation. A
result with an engine missing is never kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from langchain_classic.retrievers import EnsembleRetriever
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from copilot.search.base import Hit, KeywordIndex, VectorIndex, search_tags
from copilot.search.fusion import (
    FUSION_METHODS,
    FusionMethod,
    Normalisation,
    convex_scores,
    reciprocal_rank_scores,
)
from copilot.search.language import detect_language, is_reliable
from copilot.search.scope import AccessScope
from copilot.settings import Settings

log = logging.getLogger(__name__)

KEYWORD, VECTOR = "keyword", "vector"


@dataclass
class SearchReport:
    """What happened during one search: engines that failed, and time spent in each."""

    missing: dict[str, str] = field(default_factory=dict)  # engine name -> error
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False  # answered from the query cache


class CachedRetrieval(Protocol):
    """One cache lookup: the documents kept for the key (None: not cached, or stale), and
    how to keep the result computed instead (under the generation read by the lookup)."""

    documents: list[Document] | None

    async def keep(self, documents: list[Document]) -> None: ...


class RetrievalCache(Protocol):
    """Where fused results of earlier searches wait (copilot.state.query_cache)."""

    async def lookup(self, key: str) -> CachedRetrieval: ...


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
    # Only chunks holding any of them, filtered in the engine (BaseRetriever's own `tags`
    # are LangChain's callback labels).
    file_tags: tuple[str, ...] = ()
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
        return await self.index.search(query, self.scope, self.k, self.file_tags)


class VectorRetriever(_IndexRetriever):
    index: Any  # VectorIndex
    embeddings: Any  # Embeddings
    retriever_name: str = VECTOR

    async def _hits(self, query: str) -> list[Hit]:
        vector = await asyncio.to_thread(self.embeddings.embed_query, query)
        return await self.index.search(vector, self.scope, self.k, self.file_tags)


class ScoredEnsembleRetriever(EnsembleRetriever):
    """EnsembleRetriever that fuses by RRF or by a convex combination of normalised scores,
    and keeps the fused score and every retriever's rank and score on each document.

    LangChain runs the retrievers and hands their lists to `weighted_reciprocal_rank`; that
    one hook is overridden, so retrieval, callbacks and `id_key` merging stay LangChain's.
    """

    # No defaults: every value comes from Settings through HybridSearch (or a bench's sweep).
    top_k: int
    fusion: FusionMethod
    normalisation: Normalisation
    #: The metadata key holding each retriever's engine score, in `retrievers` order.
    score_keys: list[str] = [f"{KEYWORD}_score", f"{VECTOR}_score"]

    def weighted_reciprocal_rank(self, doc_lists: list[list[Document]]) -> list[Document]:
        if self.fusion == "rrf":
            order = super().weighted_reciprocal_rank(doc_lists)
            fused_ids = [doc.metadata["chunk_id"] for doc in order]
            scores = reciprocal_rank_scores(
                [[doc.metadata["chunk_id"] for doc in docs] for docs in doc_lists],
                self.weights,
                self.c,
            )
        elif self.fusion == "convex":
            scores = convex_scores(
                [
                    [(doc.metadata["chunk_id"], float(doc.metadata[key])) for doc in docs]
                    for docs, key in zip(doc_lists, self.score_keys, strict=True)
                ],
                self.weights,
                self.normalisation,
            )
            fused_ids = sorted(scores, key=lambda item: -scores[item])  # stable: ties keep order
        else:
            raise ValueError(f"unknown fusion {self.fusion!r}: use one of {FUSION_METHODS}")
        merged: dict[str, dict[str, Any]] = {}
        documents: dict[str, Document] = {}
        for docs in doc_lists:
            for doc in docs:
                chunk_id = doc.metadata["chunk_id"]
                documents.setdefault(chunk_id, doc)
                merged.setdefault(chunk_id, {}).update(
                    {k: v for k, v in doc.metadata.items() if k.endswith(("_rank", "_score"))}
                )
        results = []
        for chunk_id in fused_ids[: self.top_k]:
            doc = documents[chunk_id]
            metadata = {**doc.metadata, **merged[chunk_id], "fused_score": scores[chunk_id]}
            results.append(Document(id=doc.id, page_content=doc.page_content, metadata=metadata))
        return results


@dataclass(frozen=True)
class FusionWeights:
    """How much each retriever counts, by the language of the question.

    The embedding model is measured in a few languages (all-MiniLM-L6-v2: English only); a
    question in another language gets `other_vector` (default 0: the keyword ranking as it
    is, the vector's hits only after it), so fusion cannot rank below keyword search alone
    where the vector model does not read the language. A question of unknown language
    (no detector, or too short to tell) is treated as one the model reads.
    """

    keyword: float
    vector: float
    vector_languages: frozenset[str]
    other_vector: float

    def for_language(self, language: str | None) -> tuple[float, float]:
        """(keyword, vector) weights for a question in `language` (ISO 639-1, or None)."""
        if language is None or language.lower() in self.vector_languages:
            return self.keyword, self.vector
        return self.keyword, self.other_vector


@dataclass
class HybridSearch:
    """Builds, per request, the access-scoped ensemble over both indexes. It has no
    defaults of its own: `from_settings` (the composition root's way) fills every one."""

    keyword: KeywordIndex
    vector: VectorIndex
    embeddings: Embeddings
    weights: FusionWeights
    fusion: FusionMethod
    normalisation: Normalisation
    c: int
    fetch_k: int
    k: int
    cache: RetrievalCache | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        keyword: KeywordIndex,
        vector: VectorIndex,
        embeddings: Embeddings,
        cache: RetrievalCache | None = None,
    ) -> HybridSearch:
        weights = FusionWeights(
            settings.keyword_weight,
            settings.vector_weight,
            frozenset(language.lower() for language in settings.vector_languages),
            settings.vector_weight_other_languages,
        )
        return cls(
            keyword,
            vector,
            embeddings,
            weights,
            settings.fusion,
            settings.fusion_normalisation,
            settings.rrf_c,
            settings.retrieval_fetch_k,
            settings.retrieval_k,
            cache if settings.query_cache else None,
        )

    #: The names a `SearchReport` gives this search's engines.
    engines: ClassVar[tuple[str, str]] = (KEYWORD, VECTOR)

    def retriever(
        self,
        scope: AccessScope,
        report: SearchReport | None = None,
        k: int | None = None,
        language: str | None = None,
        tags: Sequence[str] = (),
    ) -> ScoredEnsembleRetriever:
        """The ensemble for one question; `language` (ISO 639-1) picks the weights, `tags`
        (any of them) narrow both engines' queries."""
        report = report if report is not None else SearchReport()
        fetch = max(self.fetch_k, k or 0)
        wanted = tuple(search_tags(tags))
        return ScoredEnsembleRetriever(
            retrievers=[
                KeywordRetriever(
                    index=self.keyword, scope=scope, k=fetch, report=report, file_tags=wanted
                ),
                VectorRetriever(
                    index=self.vector,
                    embeddings=self.embeddings,
                    scope=scope,
                    k=fetch,
                    report=report,
                    file_tags=wanted,
                ),
            ],
            weights=list(self.weights.for_language(language)),
            c=self.c,
            id_key="chunk_id",
            top_k=k or self.k,
            fusion=self.fusion,
            normalisation=self.normalisation,
        )

    def cache_key(
        self,
        query: str,
        scope: AccessScope,
        k: int | None,
        language: str | None,
        tags: Sequence[str],
    ) -> str:
        """A digest of everything a result depends on but the indexes' contents (the cache
        adds their generation): the asker's access tokens, never only who asks, so a user
        whose scope changed, or two users of different scopes, never share an entry."""
        parts = {
            "query": query,
            "k": k or self.k,
            "language": language,
            "tags": search_tags(tags),
            "access": scope.sorted_tokens(),
            "fusion": [
                self.fusion,
                self.normalisation,
                self.c,
                max(self.fetch_k, k or 0),
                self.weights.keyword,
                self.weights.vector,
                sorted(self.weights.vector_languages),
                self.weights.other_vector,
            ],
        }
        encoded = json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()

    async def search(
        self,
        query: str,
        scope: AccessScope,
        k: int | None = None,
        language: str | None = None,
        tags: Sequence[str] = (),
    ) -> tuple[list[Document], SearchReport]:
        """The fused top k for `query`. The question's `language` picks the weights (a
        language the vector model does not read is ranked by keyword search); when not
        given it is detected, where detection is reliable (else the vector languages').
        With `tags`, only chunks holding any of them. Answered from the cache when it
        holds this search at the current index generation."""
        report = SearchReport()
        start = time.perf_counter()
        cached = None
        if self.cache is not None:
            cached = await self.cache.lookup(self.cache_key(query, scope, k, language, tags))
            if cached.documents is not None:
                report.cached = True
                report.timings_ms["total"] = (time.perf_counter() - start) * 1000
                return cached.documents, report
        if language is None and is_reliable(query):
            language = detect_language(query)
        documents = await self.retriever(scope, report, k, language, tags).ainvoke(query)
        if cached is not None and not report.missing:  # a degraded result is not kept
            await cached.keep(documents)
        report.timings_ms["total"] = (time.perf_counter() - start) * 1000
        return documents, report
