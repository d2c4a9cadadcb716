"""The packaged all-MiniLM-L6-v2 on ONNX Runtime: the vectors the default provider makes,
how it tokenizes, and that indexes of the torch model are refused until rebuilt."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from copilot.db.models import SearchIndexState
from copilot.knowledge.embeddings import (
    MAX_TOKENS,
    MODEL_NAME,
    QUERY_THREADS,
    LocalMiniLM,
    VectorCache,
    create_embeddings,
)
from copilot.knowledge.knowledge_base import EmbeddingModelChanged, KnowledgeBase
from copilot.settings import Settings

QUESTIONS = [
    "What is the incubation period of SARS-CoV-2?",
    "How does dense passage retrieval compare with BM25?",
    "Wie lange dauert die Inkubationszeit?",  # non-English text goes through the same path
    "",  # an empty question embeds like any other text
]
README = Path(__file__).parents[2] / "README.md"


def real_text(count: int = 48, size: int = 700) -> list[str]:
    """Pieces of this repository's README: real prose, tables and code of mixed lengths."""
    text = README.read_text(encoding="utf-8")
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    step = max(1, len(pieces) // count)
    return [p for p in pieces[::step] if p.strip()][:count]


def as_array(vectors: list[list[float]]) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float64)


def test_the_default_local_provider_is_onnx(embeddings: LocalMiniLM) -> None:
    provider = create_embeddings(Settings())
    assert isinstance(provider, LocalMiniLM)
    assert provider.info.name == MODEL_NAME == "all-MiniLM-L6-v2-onnx-int8"
    assert provider.info.dimension == 384


def test_vectors_are_384_normalised_deterministic_and_batch_independent(
    embeddings: LocalMiniLM,
) -> None:
    texts = real_text(24) + QUESTIONS
    vectors = as_array(embeddings.embed_documents(texts))
    assert vectors.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = as_array(LocalMiniLM(batch_size=5).embed_documents(list(reversed(texts))))[::-1]
    assert np.abs(vectors - again).max() < 1e-6  # other batches, other padding, same vectors
    one_by_one = as_array([embeddings._embed_one(text) for text in texts])
    assert np.abs(vectors - one_by_one).max() < 1e-6  # the question session agrees
    assert embeddings.embed_documents([]) == []
    distinct = vectors[:24] @ vectors[:24].T
    assert distinct[~np.eye(24, dtype=bool)].max() < 0.99  # no collapse onto one vector


def test_long_input_is_truncated_at_the_models_256_tokens(embeddings: LocalMiniLM) -> None:
    long = "coronavirus spike protein binding " * 200  # 1,000 word pieces
    assert embeddings.count_tokens(long) == 1000  # the chunker's count is never truncated
    encoding = embeddings.loaded.tokenizer.encode(long)
    assert len(encoding.ids) == MAX_TOKENS == 256  # [CLS] + 254 pieces + [SEP]
    head = as_array(embeddings.embed_documents([long, long + " influenza vaccine trial"]))
    assert np.abs(head[0] - head[1]).max() < 1e-6  # text past 256 tokens is not read
    shorter = np.asarray(embeddings._embed_one("coronavirus spike protein binding " * 20))
    assert np.abs(head[0] - shorter).max() > 1e-3  # but within 256 every token counts


def test_the_chunker_counts_the_pieces_the_model_reads(embeddings: LocalMiniLM) -> None:
    """count_tokens is the model's input less [CLS] and [SEP]."""
    text = "Die Inkubationszeit beträgt im Mittel fünf bis sechs Tage. " * 3
    pieces = embeddings.loaded.counter.encode(text, add_special_tokens=False)
    assert embeddings.count_tokens(text) == len(pieces.ids)
    assert len(embeddings.loaded.tokenizer.encode(text).ids) == len(pieces.ids) + 2


def test_vectors_match_the_torch_models(embeddings: LocalMiniLM) -> None:
    pytest.importorskip("sentence_transformers")
    from copilot.knowledge.embeddings_torch import TorchMiniLM

    torch_model = TorchMiniLM()
    texts = real_text(48)
    onnx = as_array(embeddings.embed_documents(texts))
    fp32 = as_array(torch_model.embed_documents(texts))
    cosines = (onnx * fp32).sum(axis=1)
    assert cosines.mean() >= 0.999, cosines.mean()
    assert cosines.min() >= 0.998, cosines.min()
    for question in QUESTIONS[:3]:
        assert np.dot(embeddings.embed_query(question), torch_model.embed_query(question)) >= 0.998
    # The same tokenizer: the chunker counts the same tokens with either provider.
    assert [embeddings.count_tokens(t) for t in texts] == [
        torch_model.count_tokens(t) for t in texts
    ]


def test_sessions_have_deliberate_threads_and_no_spinning(embeddings: LocalMiniLM) -> None:
    loaded = embeddings.loaded
    documents = loaded.documents.get_session_options()
    queries = loaded.queries.get_session_options()
    assert queries.intra_op_num_threads == QUERY_THREADS == 1
    assert documents.intra_op_num_threads == embeddings.document_threads >= 1
    for options in (documents, queries):
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.inter_op_num_threads == 1


def test_answering_questions_does_not_open_the_documents_session() -> None:
    """Each session holds ~125 MB of folded weights: a server that only answers keeps one."""
    provider = LocalMiniLM(document_threads=2)
    provider.embed_query("How long is the incubation period?")
    assert not provider.loaded.documents_open
    vectors = provider.embed_documents(["The incubation period is five days."])
    assert provider.loaded.documents_open
    assert provider.loaded.documents is not provider.loaded.queries
    again = provider.embed_query("The incubation period is five days.")
    assert float(np.dot(vectors[0], again)) > 0.999  # both sessions run the same model


def test_the_default_provider_loads_neither_torch_nor_telemetry() -> None:
    """In a fresh process: embedding a text imports no torch, and telemetry is off."""
    code = (
        "import os, sys\n"
        "from copilot.knowledge.embeddings import LocalMiniLM\n"
        "LocalMiniLM().embed_query('hello')\n"
        "print(os.environ.get('ORT_DISABLE_TELEMETRY'), 'torch' in sys.modules,"
        " 'sentence_transformers' in sys.modules, 'transformers' in sys.modules)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "False", "False", "False"]


async def test_an_index_of_the_torch_model_is_refused_until_reindexed(
    kb: KnowledgeBase,
) -> None:
    async with kb.sessions() as session:
        state = await session.get(SearchIndexState, 1)
        assert state is not None and state.embedding_model == MODEL_NAME
        state.embedding_model = "sentence-transformers/all-MiniLM-L6-v2"  # built before
        await session.commit()
    with pytest.raises(EmbeddingModelChanged) as refused:
        await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=kb.embeddings)
    message = str(refused.value)
    assert "sentence-transformers/all-MiniLM-L6-v2" in message and MODEL_NAME in message
    assert "int8" in message and "ONNX Runtime" in message and "not equal" in message
    assert "run `copilot reindex --all`" in message
    # What `copilot reindex --all` does: open anyway, rebuild, record the new model.
    from copilot.knowledge.ingest import reindex

    rebuilt = await KnowledgeBase.open(
        kb.settings, kb.sessions, embeddings=kb.embeddings, allow_model_change=True
    )
    try:
        await reindex(rebuilt)
    finally:
        await rebuilt.close()
    reopened = await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=kb.embeddings)
    await reopened.close()


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


def test_chunks_embed_at_a_lower_priority_than_questions() -> None:
    """On busy cores a question goes first: chunk embedding runs niced, ORT's threads too."""
    if not hasattr(os, "getpriority"):
        pytest.skip("no thread priorities here")
    base = os.getpriority(os.PRIO_PROCESS, 0)
    provider = LocalMiniLM(document_threads=2, documents_nice=5)
    provider.embed_documents(["The incubation period is five days."])
    niced = [t for t in _threads() if t[2] == min(base + 5, 19)]
    # The worker that runs the batches and the intra-op thread ORT started from it.
    assert len(niced) >= provider.document_threads == 2, _threads()
    provider.embed_query("How long is the incubation period?")  # in this thread: not niced
    assert os.getpriority(os.PRIO_PROCESS, 0) == base


def _threads() -> list[tuple[int, str, int]]:
    """(thread id, name, niceness) of this process's threads, from /proc."""
    rows = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        name = (task / "comm").read_text().strip()
        niceness = int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
        rows.append((int(task.name), name, niceness))
    return rows
