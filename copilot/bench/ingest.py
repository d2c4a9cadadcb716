"""`copilot bench ingest FILE...`: how fast files go through the product's pipeline.

Each file is ingested alone, by the pipeline `copilot ingest` and chat uploads use, into
a scratch knowledge base (SQLite and the embedded indexes in a temporary folder). For each:
wall seconds, pages/s (when the format has pages) and chunks/s; the seconds each stage
spent working (stages overlap, so they add up to more than the wall time when the overlap
pays); and, measured in the same run right after, the embedding model alone on the same
chunk texts in batches of the same size. `pipeline / raw` is the ingestion's chunks/s over
the model's: 1.0 means everything but embedding is hidden behind it. On a shared machine
the load can change between the two; `embedding share` (the seconds the model worked over
the wall time, both from the one ingestion) says the same without that skew.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select

from copilot.bench.retrieval import Say, scratch_knowledge_base
from copilot.db.models import Chunk
from copilot.knowledge.embeddings import EmbeddingProvider
from copilot.knowledge.ingest import IngestRequest, Ownership
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.pipeline import StageClock, run_pipeline
from copilot.search.language import detect_language
from copilot.settings import Settings

#: Chunks the model embeds again alone, per file (the first ones, in order).
RAW_SAMPLE = 512
STAGES = ("claim", "parse", "chunk", "embed", "database", "index", "store")


@dataclass
class FileFigures:
    name: str
    outcome: str
    pages: int | None
    chunks: int
    seconds: float
    pages_per_second: float | None
    chunks_per_second: float
    stage_seconds: dict[str, float]  # busy seconds of each stage (they overlap)
    language_seconds: float  # detecting its chunks' languages again alone (within "chunk")
    raw_sample: int  # chunks embedded again alone
    raw_chunks_per_second: float
    pipeline_to_raw: float
    # Of the wall time, the share the model was embedding: unlike pipeline / raw, not
    # skewed when other work on the machine changes between the two measurements.
    embedding_share: float
    error: str | None = None


@dataclass
class IngestReport:
    embedding_model: str
    batch_size: int
    cpus: int
    load_average_before: float
    files: list[FileFigures] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def run_ingest_bench(
    settings: Settings,
    paths: list[Path],
    *,
    raw_sample: int = RAW_SAMPLE,
    say: Say = print,
    embeddings: EmbeddingProvider | None = None,
) -> IngestReport:
    async with scratch_knowledge_base(settings, embeddings) as (kb, principal, recording):
        model = recording.inner
        if recording.vector_store is not None:
            say(f"chunk vectors cached in {recording.vector_store}: embedding is not timed")
        await _warm_up(kb, model)
        report = IngestReport(
            embedding_model=model.info.name,
            batch_size=kb.settings.embedding_batch_size,
            cpus=os.cpu_count() or 1,
            load_average_before=round(os.getloadavg()[0], 2),
        )
        ownership = Ownership(uuid.UUID(principal.user_id), scope="company")
        for path in paths:
            figures = await _bench_file(kb, model, path, ownership, raw_sample)
            report.files.append(figures)
            say(
                f"{figures.name}: {figures.chunks} chunks in {figures.seconds:.1f} s "
                f"({figures.chunks_per_second:.1f}/s; raw model {figures.raw_chunks_per_second:.1f}"
                f"/s; pipeline / raw {figures.pipeline_to_raw:.2f})"
            )
        return report


async def _warm_up(kb: KnowledgeBase, model: EmbeddingProvider) -> None:
    """Load the model and the language detector before anything is timed."""
    model.embed_documents(["warm up"])
    detect_language("warm up the detector")


async def _bench_file(
    kb: KnowledgeBase,
    model: EmbeddingProvider,
    path: Path,
    ownership: Ownership,
    raw_sample: int,
) -> FileFigures:
    clock = StageClock()
    start = time.perf_counter()
    (result,) = await run_pipeline(kb, [IngestRequest(path)], ownership, clock=clock)
    seconds = time.perf_counter() - start
    texts = await _chunk_texts(kb, result.file_id) if result.outcome == "indexed" else []
    started = time.perf_counter()
    for text in texts:
        detect_language(text)
    language_seconds = time.perf_counter() - started
    sample = texts[:raw_sample]
    raw_rate = _raw_rate(model, sample, kb.settings.embedding_batch_size)
    rate = result.chunks / max(seconds, 1e-9)
    pages = result.pages
    return FileFigures(
        name=path.name,
        outcome=result.outcome,
        pages=pages,
        chunks=result.chunks,
        seconds=round(seconds, 2),
        pages_per_second=round(pages / seconds, 2) if pages else None,
        chunks_per_second=round(rate, 2),
        stage_seconds={stage: round(clock.seconds.get(stage, 0.0), 2) for stage in STAGES},
        language_seconds=round(language_seconds, 2),
        raw_sample=len(sample),
        raw_chunks_per_second=round(raw_rate, 2),
        pipeline_to_raw=round(rate / raw_rate, 3) if raw_rate else 0.0,
        embedding_share=round(clock.seconds.get("embed", 0.0) / max(seconds, 1e-9), 3),
        error=result.error,
    )


async def _chunk_texts(kb: KnowledgeBase, file_id: str) -> list[str]:
    async with kb.sessions() as session:
        rows = await session.scalars(
            select(Chunk.text).where(Chunk.file_id == uuid.UUID(file_id)).order_by(Chunk.ordinal)
        )
        return list(rows)


def _raw_rate(model: EmbeddingProvider, texts: list[str], batch_size: int) -> float:
    """Chunks/s of the model alone, in the pipeline's batches."""
    if not texts:
        return 0.0
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        model.embed_documents(texts[i : i + batch_size])
    return len(texts) / (time.perf_counter() - start)
