"""Benches may keep chunk vectors in a folder between runs, keyed by model and text."""

from __future__ import annotations

from pathlib import Path

from copilot.bench.retrieval import RecordingEmbeddings
from copilot.knowledge.embeddings import EmbeddingModelInfo, EmbeddingProvider


class _CountingModel(EmbeddingProvider):
    def __init__(self, name: str) -> None:
        self.info = EmbeddingModelInfo(name, 2)
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += texts
        return [[float(len(text)), 1.0] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return [float(len(text)), 1.0]


def test_a_second_run_reads_chunk_vectors_from_the_folder(tmp_path: Path) -> None:
    first = _CountingModel("model-a")
    vectors = RecordingEmbeddings(first, tmp_path).embed_documents(["alpha", "beta"])

    second = _CountingModel("model-a")
    again = RecordingEmbeddings(second, tmp_path).embed_documents(["beta", "alpha", "gamma"])

    assert first.embedded == ["alpha", "beta"]
    assert second.embedded == ["gamma"]  # only the new text is embedded
    assert again == [vectors[1], vectors[0], [5.0, 1.0]]


def test_another_model_does_not_read_the_first_models_vectors(tmp_path: Path) -> None:
    RecordingEmbeddings(_CountingModel("model-a"), tmp_path).embed_documents(["alpha"])
    other = _CountingModel("model-b")
    RecordingEmbeddings(other, tmp_path).embed_documents(["alpha"])
    assert other.embedded == ["alpha"]
