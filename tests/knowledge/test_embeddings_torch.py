"""The fp32 all-MiniLM-L6-v2 on torch (the `torch` extra): the fast question path agrees
with batch encoding, and its thread pinning stays inside the call. Skipped without torch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from copilot.knowledge.embeddings_torch import (  # noqa: E402
    QUERY_THREADS,
    TorchMiniLM,
    torch_threads,
)

QUESTIONS = [
    "What is the incubation period of SARS-CoV-2?",
    "How does dense passage retrieval compare with BM25?",
    "Wie lange dauert die Inkubationszeit?",  # non-English text goes through the same path
    "",  # an empty question embeds like any other text
]


@pytest.fixture(scope="module")
def embeddings() -> TorchMiniLM:
    return TorchMiniLM()


def test_question_vectors_equal_batch_encoding(embeddings: TorchMiniLM) -> None:
    for question in QUESTIONS:
        fast = np.asarray(embeddings._embed_one(question))
        batch = np.asarray(embeddings.embed_documents([question])[0])
        reference = embeddings.model.encode(
            [question], normalize_embeddings=True, convert_to_numpy=True
        )[0]
        assert fast.shape == (384,)
        assert np.abs(fast - batch).max() < 1e-5
        assert np.abs(fast - reference).max() < 1e-5
        assert abs(np.linalg.norm(fast) - 1.0) < 1e-5


def test_long_questions_are_truncated_like_documents(embeddings: TorchMiniLM) -> None:
    question = "coronavirus spike protein binding " * 200  # far past 256 word pieces
    fast = np.asarray(embeddings._embed_one(question))
    batch = np.asarray(embeddings.embed_documents([question])[0])
    assert np.abs(fast - batch).max() < 1e-5


def test_query_threads_do_not_leak_into_other_threads(embeddings: TorchMiniLM) -> None:
    before = torch.get_num_threads()
    embeddings._embed_one("Which thread count does this run on?")
    assert torch.get_num_threads() == before
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [before]  # new threads start from the process-wide value, not 1


def test_torch_threads_pins_the_count_inside_only() -> None:
    before = torch.get_num_threads()
    with torch_threads(QUERY_THREADS):
        assert torch.get_num_threads() == QUERY_THREADS
    assert torch.get_num_threads() == before
