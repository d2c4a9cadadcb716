"""The packaged all-MiniLM-L6-v2: the fast question path agrees with batch encoding."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import torch

from copilot.knowledge.embeddings import QUERY_THREADS, LocalMiniLM, VectorCache, torch_threads

QUESTIONS = [
    "What is the incubation period of SARS-CoV-2?",
    "How does dense passage retrieval compare with BM25?",
    "Wie lange dauert die Inkubationszeit?",  # non-English text goes through the same path
    "",  # an empty question embeds like any other text
]


def test_question_vectors_equal_batch_encoding(embeddings: LocalMiniLM) -> None:
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


def test_long_questions_are_truncated_like_documents(embeddings: LocalMiniLM) -> None:
    question = "coronavirus spike protein binding " * 200  # far past 256 word pieces
    fast = np.asarray(embeddings._embed_one(question))
    batch = np.asarray(embeddings.embed_documents([question])[0])
    assert np.abs(fast - batch).max() < 1e-5


def test_repeated_question_comes_from_the_cache(embeddings: LocalMiniLM) -> None:
    question = f"Is question {uuid.uuid4()} asked twice?"
    hits = embeddings.query_cache.hits
    first = embeddings.embed_query(question)
    assert embeddings.query_cache.hits == hits
    first.append(0.0)  # the caller's copy: the cache keeps its own
    second = embeddings.embed_query(question)
    assert embeddings.query_cache.hits == hits + 1
    assert len(second) == 384
    assert second == first[:384]


def test_query_cache_drops_the_least_recently_used() -> None:
    cache = VectorCache[list[float]](2)
    cache.put("a", [1.0])
    cache.put("b", [2.0])
    assert cache.get("a") == [1.0]  # a is now the most recent
    cache.put("c", [3.0])
    assert cache.get("b") is None
    assert cache.get("a") == [1.0] and cache.get("c") == [3.0]
    assert (cache.hits, cache.misses) == (3, 1)
    cache.clear()
    assert cache.get("a") is None and (cache.hits, cache.misses) == (0, 1)


def test_query_threads_do_not_leak_into_other_threads(embeddings: LocalMiniLM) -> None:
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
