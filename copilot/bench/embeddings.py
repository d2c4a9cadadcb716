"""`copilot bench embeddings`: the local embedding providers and ONNX Runtime's settings,
interleaved in one process so every variant sees the same machine.

Throughput: chunks of the corpus (the real chunker) embedded a call at a time, as ingestion
calls the provider; each round runs every variant once, in a rotating order. Latency: one
question at a time through the question path (no cache), every variant on the same question
before the next; once on a quiet process and once while another thread of the same process
embeds chunks (ingestion during chat: ONNX Runtime's spinning threads then take the cores
that the other work needs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from copilot.bench.datasets import EvalDataset
from copilot.bench.metrics import percentile
from copilot.knowledge.chunking import Chunker
from copilot.knowledge.embeddings import EmbeddingProvider, LocalMiniLM
from copilot.knowledge.loaders import Page
from copilot.settings import Settings

Say = Callable[[str], None]


@dataclass(frozen=True)
class Variant:
    name: str
    make: Callable[[], EmbeddingProvider]


@dataclass
class ThroughputFigures:
    variant: str
    chunks: int
    seconds: float
    chunks_per_second: float
    cpu_ms_per_chunk: float  # process CPU: includes every thread the runtime starts


@dataclass
class LatencyFigures:
    variant: str
    condition: str  # "quiet" or "while ingesting"
    questions: int
    p50_ms: float
    p95_ms: float
    cpu_ms: float | None  # per question; None under the background load (not separable)


@dataclass
class EmbeddingsReport:
    chunks_per_call: int
    mean_chunk_tokens: float
    throughput: list[ThroughputFigures] = field(default_factory=list)
    latency: list[LatencyFigures] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def torch_available() -> bool:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _torch() -> EmbeddingProvider:
    from copilot.knowledge.embeddings_torch import TorchMiniLM

    return TorchMiniLM()


def _threads_and_spinning(
    label: str, make: Callable[[int, bool], Callable[[], EmbeddingProvider]]
) -> list[Variant]:
    """One variant for each of 1 and 2 threads, spinning off and on (`label` names them)."""
    return [
        Variant(
            label.format(threads=threads, spinning="on" if spinning else "off"),
            make(threads, spinning),
        )
        for threads in (1, 2)
        for spinning in (False, True)
    ]


def throughput_variants(with_torch: bool) -> list[Variant]:
    """ONNX threads x spinning at batch 32, then batch sizes and length sorting."""
    variants = [Variant("torch fp32, batch 64", _torch)] if with_torch else []
    variants += _threads_and_spinning(
        "onnx {threads} thread(s), spinning {spinning}, batch 32",
        lambda threads, spinning: partial(
            LocalMiniLM, batch_size=32, document_threads=threads, spinning=spinning
        ),
    )
    for batch in (16, 64, 128):
        variants.append(
            Variant(
                f"onnx 2 threads, spinning off, batch {batch}",
                partial(LocalMiniLM, batch_size=batch, document_threads=2),
            )
        )
    variants.append(
        Variant(
            "onnx 2 threads, spinning off, batch 32, unsorted",
            lambda: LocalMiniLM(batch_size=32, document_threads=2, sort_by_length=False),
        )
    )
    return variants


def latency_variants(with_torch: bool) -> list[Variant]:
    variants = [Variant("torch fp32, 1 thread", _torch)] if with_torch else []
    return variants + _threads_and_spinning(
        "onnx {threads} thread(s), spinning {spinning}",
        lambda threads, spinning: partial(
            LocalMiniLM, document_threads=2, query_threads=threads, spinning=spinning
        ),
    )


def corpus_chunks(dataset: EvalDataset, chunker: Chunker, count: int) -> list[str]:
    texts: list[str] = []
    for document in dataset.documents:
        texts += [c.text for c in chunker.split([Page(number=None, text=document.text)])]
        if len(texts) >= count:
            break
    return texts[:count]


def _in_turn(count: int, shift: int) -> list[int]:
    """0 .. count-1, starting at `shift`: over the rounds each variant goes first in turn, so
    none always runs on a machine the one before it warmed (or loaded)."""
    first = shift % count
    return [*range(first, count), *range(first)]


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (this process's) that `work()` took."""
    wall, process = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - process


def _embed_in_calls(model: EmbeddingProvider, texts: list[str], per_call: int) -> None:
    for start in range(0, len(texts), per_call):
        model.embed_documents(texts[start : start + per_call])


def measure_throughput(
    variants: list[Variant], texts: list[str], per_call: int, rounds: int, say: Say
) -> list[ThroughputFigures]:
    models = [v.make() for v in variants]
    for model in models:
        model.embed_documents(texts[:8])  # load and warm up
    seconds = [0.0] * len(models)
    cpu = [0.0] * len(models)
    for round_number in range(rounds):
        for index in _in_turn(len(models), round_number):
            wall, process = _timed(partial(_embed_in_calls, models[index], texts, per_call))
            seconds[index] += wall
            cpu[index] += process
        say(f"throughput round {round_number + 1}/{rounds} done")
    chunks = len(texts) * rounds
    return [
        ThroughputFigures(
            v.name,
            chunks,
            round(seconds[i], 2),
            round(chunks / seconds[i], 1),
            round(1000 * cpu[i] / chunks, 1),
        )
        for i, v in enumerate(variants)
    ]


def measure_latency(
    variants: list[Variant],
    questions: list[str],
    background: list[str] | None,
    say: Say,
) -> list[LatencyFigures]:
    """Per-question wall (and, when quiet, CPU) time of each variant's question path."""
    models = [v.make() for v in variants]
    for model in models:
        model._embed_one("warm up")  # type: ignore[attr-defined]
    stop = threading.Event()
    worker: threading.Thread | None = None
    if background:
        ingesting = LocalMiniLM(batch_size=32)

        def ingest() -> None:
            while not stop.is_set():
                for start in range(0, len(background), 32):
                    if stop.is_set():
                        return
                    ingesting.embed_documents(background[start : start + 32])

        ingesting.embed_documents(background[:8])
        worker = threading.Thread(target=ingest, daemon=True)
        worker.start()
    walls: list[list[float]] = [[] for _ in models]
    cpus: list[list[float]] = [[] for _ in models]
    try:
        for number, question in enumerate(questions):
            for index in _in_turn(len(models), number):
                wall, process = _timed(partial(models[index]._embed_one, question))  # type: ignore[attr-defined]
                walls[index].append(1000 * wall)
                cpus[index].append(1000 * process)
    finally:
        stop.set()
        if worker is not None:
            worker.join()
    condition = "while ingesting" if background else "quiet"
    say(f"latency ({condition}) done")
    return [
        LatencyFigures(
            v.name,
            condition,
            len(questions),
            round(percentile(walls[i], 50), 1),
            round(percentile(walls[i], 95), 1),
            None if background else round(sum(cpus[i]) / len(cpus[i]), 1),
        )
        for i, v in enumerate(variants)
    ]


def run_embeddings_bench(
    settings: Settings,
    dataset: EvalDataset,
    *,
    chunks: int = 256,
    rounds: int = 3,
    questions: int = 60,
    with_torch: bool | None = None,
    say: Say = print,
) -> EmbeddingsReport:
    with_torch = torch_available() if with_torch is None else with_torch
    counter = LocalMiniLM()
    chunker = Chunker(
        counter.count_tokens,
        settings.chunk_size,
        settings.chunk_overlap,
        chars=settings.chunk_chars,
        max_tokens=settings.chunk_max_tokens,
    )
    texts = corpus_chunks(dataset, chunker, chunks)
    say(f"{len(texts)} chunks of {dataset.name}; torch {'on' if with_torch else 'not installed'}")
    report = EmbeddingsReport(
        settings.embedding_batch_size,
        round(sum(counter.count_tokens(t) for t in texts) / max(len(texts), 1), 1),
    )
    report.throughput = measure_throughput(
        throughput_variants(with_torch), texts, settings.embedding_batch_size, rounds, say
    )
    asked = [q.text for q in dataset.queries[:questions]]
    report.latency = measure_latency(latency_variants(with_torch), asked, None, say)
    report.latency += measure_latency(latency_variants(with_torch), asked, texts, say)
    return report
