"""The bench's fusion sweep re-fuses one run's rankings exactly as the live ensemble does."""

from __future__ import annotations

import pytest
from langchain_core.runnables import RunnableLambda

from copilot.bench.datasets import ANSWER_SPAN, EvalDataset, EvalDocument, EvalQuery
from copilot.bench.metrics import RetrievedChunk, evaluate_run
from copilot.bench.retrieval import as_documents, fusion_of, fusion_sweep
from copilot.search.ensemble import ScoredEnsembleRetriever

KEYWORD = ["a", "b", "c", "d"]
VECTOR = ["d", "e", "a"]


@pytest.mark.parametrize(("weights", "c"), [((0.8, 0.2), 60), ((0.5, 0.5), 1), ((0.3, 0.7), 10)])
def test_fusion_orders_like_the_ensemble(weights: tuple[float, float], c: int) -> None:
    idle: RunnableLambda[str, list] = RunnableLambda(lambda _: [])  # type: ignore[type-arg]
    ensemble = ScoredEnsembleRetriever(
        retrievers=[idle, idle], weights=list(weights), c=c, id_key="chunk_id", top_k=100
    )
    lists = [as_documents(KEYWORD), as_documents(VECTOR)]
    live = [d.metadata["chunk_id"] for d in ensemble.weighted_reciprocal_rank(lists)]
    swept = [d.metadata["chunk_id"] for d in fusion_of(weights, c).weighted_reciprocal_rank(lists)]
    assert swept == live


def test_weights_decide_which_retriever_leads() -> None:
    def first(weights: tuple[float, float]) -> str:
        fused = fusion_of(weights, 1).weighted_reciprocal_rank(
            [as_documents(KEYWORD), as_documents(VECTOR)]
        )
        return str(fused[0].metadata["chunk_id"])

    # c=1: a scores 0.8/2 + 0.2/4 = 0.45 against d's 0.8/5 + 0.2/2 = 0.26, and the
    # other way round with the weights swapped (0.30 against 0.44).
    assert first((0.8, 0.2)) == "a"
    assert first((0.2, 0.8)) == "d"


def test_sweep_scores_every_setting_and_both_halves() -> None:
    documents = [EvalDocument("doc", "", "x" * 400)]
    spans = {cid: RetrievedChunk("doc", i * 100, i * 100 + 100) for i, cid in enumerate("abcde")}
    queries = [
        EvalQuery("q1", "one", {"doc": 1}, (("doc", 150, 160),)),  # in chunk b
        EvalQuery("q2", "two", {"doc": 1}, (("doc", 410, 420),)),  # in chunk e
    ]
    dataset = EvalDataset("tiny", documents, queries, ANSWER_SPAN)
    keyword = {"q1": ["b", "a"], "q2": ["a", "b", "c"]}
    vector = {"q1": ["c"], "q2": ["e", "a"]}
    counts = {"q1": 1, "q2": 1}

    figures = fusion_sweep(keyword, vector, dataset, counts, spans, weights=(1.0, 0.3), cs=(1, 60))

    assert [(f.keyword_weight, f.vector_weight, f.c) for f in figures] == [
        (1.0, 0.0, 1),
        (1.0, 0.0, 60),
        (0.3, 0.7, 1),
        (0.3, 0.7, 60),
    ]
    # Weight 0 keeps the vector's chunks, after every keyword one: q1 b a c, q2 a b c e.
    keyword_first = {"q1": ["b", "a", "c"], "q2": ["a", "b", "c", "e"]}
    expected = evaluate_run(
        dataset, {q: [spans[i] for i in ids] for q, ids in keyword_first.items()}, counts
    )
    assert figures[0].metrics.ndcg_at_10 == pytest.approx(expected.ndcg_at_10)
    # 0.3 / 0.7, c=60: q1 c (0.7/61) passes b (0.3/61); q2 a (0.3/61 + 0.7/62) stays
    # ahead of e (0.7/61). Both answers end at rank 2; half A is q1, half B q2.
    heavy = figures[3]
    assert heavy.metrics.mrr_at_10 == pytest.approx(0.5)
    assert heavy.ndcg_at_10_half_a == heavy.ndcg_at_10_half_b == pytest.approx(0.6309, abs=1e-4)
