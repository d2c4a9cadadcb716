"""The bench's fusion sweep re-fuses one run's rankings exactly as the live ensemble does,
for every method, and picks its setting on one half of the queries."""

from __future__ import annotations

import pytest
from langchain_core.embeddings import FakeEmbeddings

from copilot.bench.datasets import ANSWER_SPAN, EvalDataset, EvalDocument, EvalQuery
from copilot.bench.metrics import RetrievedChunk, evaluate_run
from copilot.bench.retrieval import (
    FusionSetting,
    as_documents,
    choose_fusion,
    fusion_of,
    fusion_sweep,
    sweep_settings,
)
from copilot.search.ensemble import FusionWeights, HybridSearch
from copilot.search.scope import AccessScope

KEYWORD = [("a", 9.0), ("b", 8.8), ("c", 2.0), ("d", 1.0)]
VECTOR = [("d", 0.9), ("e", 0.5), ("a", 0.4)]

SETTINGS = [
    FusionSetting("rrf", 0.8, 0.2, c=60),
    FusionSetting("rrf", 0.5, 0.5, c=1),
    FusionSetting("convex", 0.3, 0.7, normalisation="minmax"),
    FusionSetting("convex", 0.6, 0.4, normalisation="zscore"),
]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.label)
def test_sweep_fuses_like_the_live_ensemble(setting: FusionSetting) -> None:
    live = HybridSearch(
        keyword=None,  # type: ignore[arg-type]  # never queried: only its fusion is used
        vector=None,  # type: ignore[arg-type]
        embeddings=FakeEmbeddings(size=4),
        weights=FusionWeights(setting.keyword_weight, setting.vector_weight, frozenset(), 0.0),
        fusion=setting.method,
        normalisation=setting.normalisation or "zscore",
        c=setting.c or 1,
        fetch_k=30,
        k=8,
    ).retriever(AccessScope("u", None, frozenset()), k=100)
    lists = [as_documents(KEYWORD, "keyword"), as_documents(VECTOR, "vector")]
    expected = [d.metadata["chunk_id"] for d in live.weighted_reciprocal_rank(lists)]
    swept = [d.metadata["chunk_id"] for d in fusion_of(setting).weighted_reciprocal_rank(lists)]
    assert swept == expected


def test_the_sweep_covers_every_method() -> None:
    settings = sweep_settings(weights=(1.0, 0.6), cs=(1, 60))
    assert [s.label for s in settings] == [
        "rrf c=1 1 / 0",
        "rrf c=60 1 / 0",
        "rrf c=1 0.6 / 0.4",
        "rrf c=60 0.6 / 0.4",
        "convex minmax 1 / 0",
        "convex minmax 0.6 / 0.4",
        "convex zscore 1 / 0",
        "convex zscore 0.6 / 0.4",
    ]


def _tiny() -> tuple[EvalDataset, dict[str, RetrievedChunk], dict[str, int]]:
    documents = [EvalDocument("doc", "", "x" * 500)]
    spans = {cid: RetrievedChunk("doc", i * 100, i * 100 + 100) for i, cid in enumerate("abcde")}
    queries = [
        EvalQuery("q1", "one", {"doc": 1}, (("doc", 150, 160),)),  # in chunk b
        EvalQuery("q2", "two", {"doc": 1}, (("doc", 410, 420),)),  # in chunk e
    ]
    return EvalDataset("tiny", documents, queries, ANSWER_SPAN), spans, {"q1": 1, "q2": 1}


def test_sweep_scores_every_setting_and_both_halves() -> None:
    dataset, spans, counts = _tiny()
    keyword = {"q1": [("b", 5.0), ("a", 4.0)], "q2": [("a", 5.0), ("b", 4.0), ("c", 1.0)]}
    vector = {"q1": [("c", 0.8)], "q2": [("e", 0.9), ("a", 0.3)]}
    settings = [
        FusionSetting("rrf", 1.0, 0.0, c=1),
        FusionSetting("rrf", 0.3, 0.7, c=60),
        FusionSetting("convex", 0.3, 0.7, normalisation="minmax"),
    ]

    figures = fusion_sweep(keyword, vector, dataset, counts, spans, settings)

    assert [f.setting for f in figures] == settings
    # Weight 0 keeps the vector's chunks, after every keyword one: q1 b a c, q2 a b c e.
    keyword_first = {"q1": ["b", "a", "c"], "q2": ["a", "b", "c", "e"]}
    expected = evaluate_run(
        dataset, {q: [spans[i] for i in ids] for q, ids in keyword_first.items()}, counts
    )
    assert figures[0].metrics.ndcg_at_10 == pytest.approx(expected.ndcg_at_10)
    # 0.3 / 0.7, c=60: q1 c (0.7/61) passes b (0.3/61); q2 a (0.3/61 + 0.7/62) stays
    # ahead of e (0.7/61). Both answers end at rank 2; half A is q1, half B q2.
    heavy = figures[1]
    assert heavy.metrics.mrr_at_10 == pytest.approx(0.5)
    assert heavy.ndcg_at_10_half_a == heavy.ndcg_at_10_half_b == pytest.approx(0.6309, abs=1e-4)
    # Convex min-max 0.3 / 0.7: q2 e (0.7 * 1) passes a (0.3 * 1 + 0.7 * 0): e first.
    assert figures[2].ndcg_at_10_half_b == pytest.approx(1.0)

    choice = choose_fusion(
        figures,
        {q: [i for i, _ in hits] for q, hits in keyword.items()},
        {q: [i for i, _ in hits] for q, hits in vector.items()},
        dataset,
        counts,
        spans,
    )
    assert choice is not None
    # Half A (q1): keyword-only puts b first (1.0); both 0.3 / 0.7 settings put c first.
    assert choice.setting == settings[0] and choice.ndcg_at_10_half_a == pytest.approx(1.0)
    assert choice.ndcg_at_10_half_b == figures[0].ndcg_at_10_half_b
    assert choice.keyword_ndcg_at_10_half_b == pytest.approx(0.0)  # q2: e not found
    assert choice.vector_ndcg_at_10_half_b == pytest.approx(1.0)
