"""`copilot bench retrieval`: quality and speed of keyword, vector and hybrid search.

The corpus goes through the real pipeline (files -> loaders -> chunks -> embeddings -> both
indexes, with the database in between) in a scratch data dir, so the figures are the
product's own. Reported for each retriever: nDCG@10, MRR@10, Recall@1/5/10/50 and query
latency p50/p95 (query embedding included); for ingestion, chunks/s and its ratio to the raw
embedding throughput measured in the same run. `scale` replicates the indexed chunks (same
vectors with a little noise, distinct ids) to measure latency at a larger size.

The fusion sweep re-fuses the keyword and vector rankings of the same run (top 50 of each,
with their engine scores) through the ensemble's own fusion code, for every method (weighted
RRF over weights x c; convex combination of min-max or z-score normalised scores over
weights), so every setting is scored without querying again. To keep the choice honest the
setting is chosen on one fixed half of the queries (even-numbered) and reported on the other.

A document that cannot be ingested (an empty one, say) is skipped and counted, never the end
of the run: its id and reason are in the report.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_classic.storage import LocalFileStore
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables import RunnableLambda
from sqlalchemy import select

from copilot import users
from copilot.bench.datasets import EvalDataset
from copilot.bench.metrics import (
    MetricSummary,
    RetrievedChunk,
    evaluate_run,
    percentile,
    relevant_chunk_counts,
    success_within_characters,
)
from copilot.bench.people import seed_bench_owner
from copilot.bench.query_cache import QueryCacheFigures, measure_query_cache
from copilot.db import migrate
from copilot.db.models import Chunk
from copilot.knowledge.embeddings import EmbeddingProvider, VectorCache
from copilot.knowledge.ingest import IngestRequest, IngestResult, Ownership
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.pipeline import StageClock, run_pipeline
from copilot.search.base import IndexedChunk
from copilot.search.ensemble import KEYWORD, VECTOR, ScoredEnsembleRetriever
from copilot.search.fusion import NORMALISATIONS, FusionMethod, Normalisation
from copilot.search.scope import AccessScope, ChunkAccess
from copilot.services import open_services
from copilot.settings import Settings
from copilot.state.query_cache import QueryCache

Say = Callable[[str], None]


@dataclass
class RetrieverFigures:
    name: str
    metrics: MetricSummary
    latency_p50_ms: float
    latency_p95_ms: float
    # Share of queries whose answer is reached within READING_BUDGET characters of the
    # ranking (see `success_within_characters`): compares chunk sizes fairly.
    recall_within_budget: float = 0.0
    # Question vectors served from the embedding cache during this retriever's pass. It is
    # emptied before each pass, so only repeated questions hit (COVID-QA: 1,360 distinct
    # questions of 1,380).
    query_cache_hits: int = 0


@dataclass(frozen=True)
class FusionSetting:
    """One way of fusing: `c` counts for RRF only, `normalisation` for convex only."""

    method: FusionMethod
    keyword_weight: float
    vector_weight: float
    c: int | None = None
    normalisation: Normalisation | None = None

    @property
    def label(self) -> str:
        how = f"c={self.c}" if self.method == "rrf" else self.normalisation
        return f"{self.method} {how} {self.keyword_weight:g} / {self.vector_weight:g}"


@dataclass
class FusionFigures:
    """One fusion setting re-scored from the run's keyword and vector rankings."""

    setting: FusionSetting
    metrics: MetricSummary
    ndcg_at_10_half_a: float  # even-numbered queries (in the dataset's order)
    ndcg_at_10_half_b: float  # odd-numbered queries


@dataclass
class FusionChoice:
    """The setting with the best nDCG@10 on half A, and what it gives on held-out half B,
    next to each single retriever on half B."""

    setting: FusionSetting
    ndcg_at_10_half_a: float
    ndcg_at_10_half_b: float
    keyword_ndcg_at_10_half_b: float
    vector_ndcg_at_10_half_b: float


@dataclass
class SkippedDocument:
    doc_id: str
    reason: str


# About what the answer is handed: 12 chunks of 128 tokens of COVID-QA (~390 characters
# each), or 6 of 256 (~780).
READING_BUDGET = 5_000
FUSION_WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)  # keyword; vector gets 1 - w
FUSION_C = (1, 5, 10, 20, 40, 60, 100)
FUSION_DEPTH = 50  # hits of each retriever fused, as the bench's ensemble pass fetches


@dataclass
class ScaleFigures:
    chunks: int
    queries: int
    latency_p50_ms: dict[str, float]
    latency_p95_ms: dict[str, float]


@dataclass
class RetrievalReport:
    dataset: str
    documents: int
    queries: int
    chunks: int
    chunk_size: int
    chunk_overlap: int
    mean_chunk_characters: float
    ingest_seconds: float
    ingest_chunks_per_second: float
    raw_embedding_chunks_per_second: float
    ingest_to_embedding_ratio: float
    ingest_stage_seconds: dict[str, float] = field(default_factory=dict)
    retrievers: list[RetrieverFigures] = field(default_factory=list)
    fusion: list[FusionFigures] = field(default_factory=list)
    fusion_choice: FusionChoice | None = None
    skipped_documents: list[SkippedDocument] = field(default_factory=list)
    scale: ScaleFigures | None = None
    query_cache: QueryCacheFigures | None = None  # None: the cache is turned off

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def run_retrieval_bench(
    settings: Settings,
    dataset: EvalDataset,
    *,
    max_queries: int | None = None,
    scale: int | None = None,
    say: Say = print,
    embeddings: EmbeddingProvider | None = None,
) -> RetrievalReport:
    async with scratch_knowledge_base(settings, embeddings) as (kb, principal, recording):
        return await _run(kb, principal, recording, dataset, max_queries, scale, say)


@asynccontextmanager
async def scratch_knowledge_base(
    settings: Settings, embeddings: EmbeddingProvider | None = None
) -> AsyncIterator[tuple[KnowledgeBase, users.Principal, RecordingEmbeddings]]:
    """An empty knowledge base in a temporary data dir (its own SQLite database and
    embedded indexes), with a Super Admin to ingest and ask as; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="copilot-bench-") as scratch:
        settings = settings.model_copy(
            update={
                "data_dir": Path(scratch),
                "database_url": "",
                "elasticsearch_index": f"{settings.elasticsearch_index}-bench",
                "weaviate_collection": f"{settings.weaviate_collection}Bench",
                "max_upload_mb": max(settings.max_upload_mb, 200),
            }
        )
        migrate.upgrade(settings)
        async with open_services(settings) as services:
            async with services.sessions() as session:
                principal = users.principal_of(await seed_bench_owner(session))
            recording = RecordingEmbeddings(
                embeddings or services.embeddings, _document_vector_store()
            )
            kb = await services.open_knowledge(embeddings=recording)
            await kb.indexes.keyword.clear()
            await kb.indexes.vector.clear()
            yield kb, principal, recording


async def _run(
    kb: KnowledgeBase,
    principal: users.Principal,
    recording: RecordingEmbeddings,
    dataset: EvalDataset,
    max_queries: int | None,
    scale: int | None,
    say: Say,
) -> RetrievalReport:
    settings = kb.settings
    raw_rate = await asyncio.to_thread(_raw_embedding_rate, kb, recording.inner, dataset)
    say(f"raw embedding throughput: {raw_rate:.1f} chunks/s")
    if recording.vector_store is not None:
        say(f"chunk vectors cached in {recording.vector_store}: ingestion is not timed fairly")
    corpus = await ingest_dataset(kb, dataset, principal, say)
    chunk_spans, ingest_seconds, chunk_count = corpus.spans, corpus.seconds, corpus.chunks
    ingest_rate = chunk_count / max(ingest_seconds, 1e-9)
    say(f"ingested {chunk_count} chunks in {ingest_seconds:.1f} s ({ingest_rate:.1f}/s)")

    queries = dataset.queries
    if max_queries is not None and max_queries < len(queries):
        queries = random.Random(7).sample(queries, max_queries)
    subset = EvalDataset(dataset.name, dataset.documents, queries, dataset.judged_by)
    counts = (
        relevant_chunk_counts(subset, _spans_by_doc(chunk_spans))
        if dataset.judged_by == "answer_span"
        else None
    )
    report = RetrievalReport(
        dataset=dataset.name,
        documents=len(dataset.documents),
        queries=len(queries),
        chunks=chunk_count,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        mean_chunk_characters=round(
            sum(c.end - c.start for c in chunk_spans.values()) / max(len(chunk_spans), 1), 1
        ),
        ingest_seconds=round(ingest_seconds, 1),
        ingest_chunks_per_second=round(ingest_rate, 1),
        raw_embedding_chunks_per_second=round(raw_rate, 1),
        ingest_to_embedding_ratio=round(ingest_rate / raw_rate, 3),
        skipped_documents=corpus.skipped,
        ingest_stage_seconds=corpus.stage_seconds,
    )
    rankings: dict[str, dict[str, list[tuple[str, float]]]] = {}
    cache = recording.query_cache
    for name in ("keyword", "vector", "ensemble"):
        if cache is not None:
            cache.clear()  # each pass embeds its questions itself
        rankings[name], latencies = await _run_queries(kb, name, queries, principal.scope)
        results = _as_spans(_ids(rankings[name]), chunk_spans)
        metrics = evaluate_run(subset, results, counts)
        report.retrievers.append(
            RetrieverFigures(
                name,
                metrics,
                round(percentile(latencies, 50), 2),
                round(percentile(latencies, 95), 2),
                recall_within_budget=round(_within_budget(subset, results), 4),
                query_cache_hits=cache.hits if cache is not None else 0,
            )
        )
        say(f"{name}: nDCG@10 {metrics.ndcg_at_10:.3f}, p95 {percentile(latencies, 95):.1f} ms")
    report.fusion = fusion_sweep(
        rankings["keyword"], rankings["vector"], subset, counts, chunk_spans
    )
    report.fusion_choice = choose_fusion(
        report.fusion,
        _ids(rankings["keyword"]),
        _ids(rankings["vector"]),
        subset,
        counts,
        chunk_spans,
    )
    if isinstance(kb.search.cache, QueryCache):
        report.query_cache = await measure_query_cache(
            kb, kb.search.cache, [query.text for query in queries], principal.scope
        )
        figures = report.query_cache
        say(
            f"query cache: hit rate {figures.hit_rate:.2f}, mean {figures.uncached_mean_ms:.1f}"
            f" -> {figures.cached_mean_ms:.1f} ms ({figures.speedup:.1f}x)"
        )
    if scale:
        report.scale = await _scaled_latency(
            kb, recording.vectors, queries, principal.scope, scale, say
        )
    return report


#: A folder that keeps chunk vectors between bench runs (by model and text), so a run that
#: changes only retrieval or answering skips re-embedding the corpus. Ingestion figures of
#: such a run do not time the embedding model.
EMBEDDING_CACHE_VARIABLE = "COPILOT_BENCH_EMBEDDING_CACHE"


def _document_vector_store() -> Path | None:
    folder = os.environ.get(EMBEDDING_CACHE_VARIABLE)
    return Path(folder) if folder else None


class RecordingEmbeddings(EmbeddingProvider):
    """The embedding model, keeping every chunk vector it makes (for the scale run), and
    reading chunk vectors from a folder first when one is given."""

    def __init__(self, inner: EmbeddingProvider, vector_store: Path | None = None) -> None:
        self.inner = inner
        self.info = inner.info
        # Whether the pipeline may count tokens beside a batch (copilot.knowledge.pipeline).
        self.counts_tokens_concurrently = getattr(inner, "counts_tokens_concurrently", False)
        self.vectors: dict[str, list[float]] = {}
        self.query_cache: VectorCache[list[float]] | None = getattr(inner, "query_cache", None)
        self.vector_store = vector_store
        self._documents: Embeddings = inner
        if vector_store is not None:
            self._documents = CacheBackedEmbeddings.from_bytes_store(
                inner, LocalFileStore(vector_store), namespace=inner.info.name, key_encoder="sha256"
            )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._documents.embed_documents(texts)
        self.vectors.update(zip(texts, vectors, strict=True))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)  # type: ignore[attr-defined, no-any-return]


def _raw_embedding_rate(
    kb: KnowledgeBase, model: Embeddings, dataset: EvalDataset, sample: int = 256
) -> float:
    """Chunks/s of the embedding model alone, on chunks of this corpus."""
    texts: list[str] = []
    for document in dataset.documents:
        texts += [d.text for d in kb.chunker.split([_page(document.text)])]
        if len(texts) >= sample:
            break
    texts = texts[:sample]
    model.embed_documents(texts[:8])  # warm up
    start = time.perf_counter()
    for i in range(0, len(texts), kb.settings.embedding_batch_size):
        model.embed_documents(texts[i : i + kb.settings.embedding_batch_size])
    return len(texts) / (time.perf_counter() - start)


def _page(text: str):  # type: ignore[no-untyped-def]
    from copilot.knowledge.loaders import Page

    return Page(number=None, text=text)


@dataclass
class IngestedCorpus:
    spans: dict[str, RetrievedChunk]  # chunk id -> where it lies in its document
    seconds: float
    chunks: int
    skipped: list[SkippedDocument] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # busy, overlapping


async def ingest_dataset(
    kb: KnowledgeBase, dataset: EvalDataset, principal: users.Principal, say: Say
) -> IngestedCorpus:
    """Ingest every document as a text file; map each chunk id to its span in its document.

    A document the pipeline refuses (empty, a duplicate of another) is skipped and listed:
    one bad record of a large corpus must not end the run. Its questions stay, unanswerable.
    """
    ownership = Ownership(uuid.UUID(principal.user_id), scope="company")
    folder = kb.settings.data_dir / "corpus"
    folder.mkdir()
    paths: dict[str, Path] = {}
    for document in dataset.documents:
        path = folder / f"{uuid.uuid4().hex}.txt"
        text = f"{document.title}\n\n{document.text}" if document.title else document.text
        path.write_text(text, encoding="utf-8")
        paths[document.doc_id] = path
    file_to_doc: dict[str, str] = {}
    skipped: list[SkippedDocument] = []
    done = 0

    def heard(position: int, result: IngestResult) -> None:
        nonlocal done
        done += 1
        if done % 10 == 0 or done == len(dataset.documents):
            say(f"  ingested {done}/{len(dataset.documents)} documents")

    # All documents in one run of the product's pipeline, as `copilot ingest` does.
    clock = StageClock()
    requests = [IngestRequest(paths[document.doc_id]) for document in dataset.documents]
    start = time.perf_counter()
    results = await run_pipeline(kb, requests, ownership, clock=clock, on_result=heard)
    seconds = time.perf_counter() - start
    for document, result in zip(dataset.documents, results, strict=True):
        if result.outcome == "indexed":
            file_to_doc[result.file_id] = document.doc_id
        else:
            reason = result.error or f"{result.outcome}: {result.summary}"
            skipped.append(SkippedDocument(document.doc_id, reason))
            say(f"  skipped document {document.doc_id}: {reason}")

    texts = {d.doc_id: d.text for d in dataset.documents}
    spans: dict[str, RetrievedChunk] = {}
    async with kb.sessions() as session:
        rows = (
            await session.execute(
                select(Chunk.id, Chunk.file_id, Chunk.text).order_by(Chunk.file_id, Chunk.ordinal)
            )
        ).all()
    cursor: dict[str, int] = {}
    for chunk_id, file_id, text in rows:
        doc_id = file_to_doc[str(file_id)]
        offset = texts[doc_id].find(text, cursor.get(doc_id, 0))
        if offset < 0:  # the title chunk, or text the loader normalised
            offset = texts[doc_id].find(text[:40])
        cursor[doc_id] = max(offset, 0) + 1
        spans[str(chunk_id)] = RetrievedChunk(doc_id, max(offset, 0), max(offset, 0) + len(text))
    stages = {stage: round(busy, 1) for stage, busy in clock.seconds.items()}
    return IngestedCorpus(spans, seconds, len(rows), skipped, stages)


def _spans_by_doc(spans: dict[str, RetrievedChunk]) -> dict[str, list[tuple[int, int]]]:
    by_doc: dict[str, list[tuple[int, int]]] = {}
    for chunk in spans.values():
        by_doc.setdefault(chunk.doc_id, []).append((chunk.start, chunk.end))
    return by_doc


async def _search_scored(
    kb: KnowledgeBase, name: str, text: str, scope: AccessScope, k: int
) -> list[tuple[str, float]]:
    """One retriever's ranked (chunk id, score): the engine's score, or the fused one."""
    if name == KEYWORD:
        return [(h.chunk_id, h.score) for h in await kb.indexes.keyword.search(text, scope, k)]
    if name == VECTOR:
        vector = await asyncio.to_thread(kb.embeddings.embed_query, text)
        return [(h.chunk_id, h.score) for h in await kb.indexes.vector.search(vector, scope, k)]
    # Uncached: a repeated question must cost what a new one does (the cache has its pass).
    documents, _ = await replace(kb.search, cache=None).search(text, scope, k)
    return [(d.metadata["chunk_id"], float(d.metadata["fused_score"])) for d in documents]


async def _run_queries(
    kb: KnowledgeBase,
    name: str,
    queries: list,  # type: ignore[type-arg]
    scope: AccessScope,
    k: int = FUSION_DEPTH,
) -> tuple[dict[str, list[tuple[str, float]]], list[float]]:
    """Each query's ranked (chunk id, score), and each query's latency in ms."""
    rankings: dict[str, list[tuple[str, float]]] = {}
    latencies: list[float] = []
    for query in queries:
        start = time.perf_counter()
        rankings[query.query_id] = await _search_scored(kb, name, query.text, scope, k)
        latencies.append((time.perf_counter() - start) * 1000)
    return rankings, latencies


def _ids(rankings: dict[str, list[tuple[str, float]]]) -> dict[str, list[str]]:
    return {qid: [chunk_id for chunk_id, _ in hits] for qid, hits in rankings.items()}


def _within_budget(dataset: EvalDataset, results: dict[str, list[RetrievedChunk]]) -> float:
    scores = [
        success_within_characters(
            query, results.get(query.query_id, []), dataset.judged_by, READING_BUDGET
        )
        for query in dataset.queries
    ]
    return sum(scores) / len(scores)


def _as_spans(
    rankings: dict[str, list[str]], spans: dict[str, RetrievedChunk]
) -> dict[str, list[RetrievedChunk]]:
    return {qid: [spans[i] for i in ids if i in spans] for qid, ids in rankings.items()}


def fusion_of(setting: FusionSetting, top_k: int = 2 * FUSION_DEPTH) -> ScoredEnsembleRetriever:
    """The live ensemble's fusion with `setting`; its retrievers are never run."""
    idle: RunnableLambda[str, list[Document]] = RunnableLambda(lambda _: [])
    return ScoredEnsembleRetriever(
        retrievers=[idle, idle],
        weights=[setting.keyword_weight, setting.vector_weight],
        c=setting.c if setting.c is not None else 1,
        id_key="chunk_id",
        top_k=top_k,
        fusion=setting.method,
        normalisation=setting.normalisation or "zscore",
    )


def as_documents(hits: list[tuple[str, float]], retriever: str) -> list[Document]:
    """Ranked (chunk id, score) as the documents that retriever hands the ensemble."""
    return [
        Document(page_content="", metadata={"chunk_id": i, f"{retriever}_score": score})
        for i, score in hits
    ]


def sweep_settings(
    weights: tuple[float, ...] = FUSION_WEIGHTS, cs: tuple[int, ...] = FUSION_C
) -> list[FusionSetting]:
    """RRF over weights x c, then convex over weights for each normalisation."""
    pairs = [(w, round(1.0 - w, 4)) for w in weights]
    rrf = [FusionSetting("rrf", kw, vec, c=c) for kw, vec in pairs for c in cs]
    convex = [
        FusionSetting("convex", kw, vec, normalisation=how)
        for how in NORMALISATIONS
        for kw, vec in pairs
    ]
    return rrf + convex


def _halves(dataset: EvalDataset) -> list[EvalDataset]:
    return [
        EvalDataset(dataset.name, dataset.documents, dataset.queries[i::2], dataset.judged_by)
        for i in (0, 1)
    ]


def _half_ndcg(
    half: EvalDataset, results: dict[str, list[RetrievedChunk]], counts: dict[str, int] | None
) -> float:
    picked = {q.query_id: results.get(q.query_id, []) for q in half.queries}
    return evaluate_run(half, picked, counts).ndcg_at_10


def fusion_sweep(
    keyword: dict[str, list[tuple[str, float]]],
    vector: dict[str, list[tuple[str, float]]],
    dataset: EvalDataset,
    counts: dict[str, int] | None,
    spans: dict[str, RetrievedChunk],
    settings: list[FusionSetting] | None = None,
    k: int = FUSION_DEPTH,
) -> list[FusionFigures]:
    """Score every setting on the same rankings; also on two halves of the queries."""
    halves = _halves(dataset)
    lists = {
        qid: [
            as_documents(keyword[qid][:k], KEYWORD),
            as_documents(vector.get(qid, [])[:k], VECTOR),
        ]
        for qid in keyword
    }
    figures = []
    for setting in settings if settings is not None else sweep_settings():
        fusion = fusion_of(setting)
        fused = {
            qid: [d.metadata["chunk_id"] for d in fusion.weighted_reciprocal_rank(docs)][:k]
            for qid, docs in lists.items()
        }
        results = _as_spans(fused, spans)
        half_a, half_b = (round(_half_ndcg(half, results, counts), 4) for half in halves)
        figures.append(
            FusionFigures(setting, evaluate_run(dataset, results, counts), half_a, half_b)
        )
    return figures


def choose_fusion(
    figures: list[FusionFigures],
    keyword: dict[str, list[str]],
    vector: dict[str, list[str]],
    dataset: EvalDataset,
    counts: dict[str, int] | None,
    spans: dict[str, RetrievedChunk],
) -> FusionChoice | None:
    """The best setting on half A (first listed wins a tie), read on half B."""
    if not figures:
        return None
    best = max(figures, key=lambda f: f.ndcg_at_10_half_a)
    half_b = _halves(dataset)[1]
    return FusionChoice(
        best.setting,
        best.ndcg_at_10_half_a,
        best.ndcg_at_10_half_b,
        round(_half_ndcg(half_b, _as_spans(keyword, spans), counts), 4),
        round(_half_ndcg(half_b, _as_spans(vector, spans), counts), 4),
    )


async def _scaled_latency(
    kb: KnowledgeBase,
    vectors: dict[str, list[float]],
    queries: list,  # type: ignore[type-arg]
    scope: AccessScope,
    target: int,
    say: Say,
) -> ScaleFigures:
    """Replicate the indexed chunks (distinct ids, jittered vectors) to `target` and time."""
    async with kb.sessions() as session:
        rows = (await session.execute(select(Chunk.id, Chunk.text, Chunk.page))).all()
    base_vectors = np.asarray([vectors[text] for _, text, _ in rows])
    have = await kb.indexes.vector.count()
    copy, rng = 0, np.random.default_rng(7)
    access = ChunkAccess(
        owner_id=str(uuid.uuid4()), scope="company", department_id=None, classification="internal"
    )
    while have < target:
        copy += 1
        file_id = str(uuid.uuid4())
        noisy = base_vectors + rng.normal(0, 0.01, base_vectors.shape)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        batch = [
            IndexedChunk(
                chunk_id=str(uuid.uuid4()),
                file_id=file_id,
                file_name=f"replica-{copy}",
                ordinal=i,
                page=page,
                text=text,
                access=access,
                vector=noisy[i].tolist(),
            )
            for i, (_, text, page) in enumerate(rows)
        ][: target - have]
        await kb.indexes.keyword.add(batch)
        await kb.indexes.vector.add(batch)
        have += len(batch)
        say(f"  scaled to {have} chunks")
    sample = random.Random(11).sample(queries, min(200, len(queries)))
    p50: dict[str, float] = {}
    p95: dict[str, float] = {}
    cache = getattr(kb.embeddings, "query_cache", None)
    for name in (KEYWORD, VECTOR, "ensemble"):
        if cache is not None:
            cache.clear()
        latencies = []
        for query in sample:
            start = time.perf_counter()
            await _search_scored(kb, name, query.text, scope, 10)
            latencies.append((time.perf_counter() - start) * 1000)
        p50[name] = round(percentile(latencies, 50), 2)
        p95[name] = round(percentile(latencies, 95), 2)
    return ScaleFigures(have, len(sample), p50, p95)
