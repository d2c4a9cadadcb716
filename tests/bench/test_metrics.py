"""Metrics against hand-computed values, and an oracle run over the real COVID-QA file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from copilot.bench.datasets import (
    ANSWER_SPAN,
    QRELS,
    EvalDataset,
    EvalDocument,
    EvalQuery,
    load_squad,
)
from copilot.bench.metrics import (
    MetricSummary,
    RetrievedChunk,
    evaluate_run,
    ideal_gains,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    recall_at_k,
    relevance_of,
    relevant_chunk_counts,
    score_query,
    success_within_characters,
    summarize,
)

COVIDQA = Path(__file__).resolve().parents[3] / "shared" / "data" / "covidqa" / "covidqa.json"

# An answer starting at character 120 of document "d1".
SPAN_QUERY = EvalQuery(
    query_id="s1",
    text="where is the answer",
    relevant_docs={"d1": 1},
    answer_spans=(("d1", 120, 140),),
)
GRADED_QUERY = EvalQuery(query_id="g1", text="graded", relevant_docs={"d1": 2, "d2": 1, "d3": 3})


def chunk(doc_id: str, start: int, end: int) -> RetrievedChunk:
    return RetrievedChunk(doc_id=doc_id, start=start, end=end)


# --- nDCG ----------------------------------------------------------------------------------


def test_ndcg_one_relevant_at_rank_two() -> None:
    assert ndcg_at_k([0, 1, 0], [1]) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k([0, 1, 0], [1]) == pytest.approx(0.6309298)


def test_ndcg_perfect_and_empty_rankings() -> None:
    assert ndcg_at_k([1, 0, 0], [1]) == 1.0
    assert ndcg_at_k([], [1]) == 0.0
    assert ndcg_at_k([0, 0], []) == 0.0  # nothing to find: 0, not a division by zero


def test_ndcg_two_relevant_at_ranks_one_and_three() -> None:
    # (1 + 1/log2(4)) / (1 + 1/log2(3)) = 1.5 / 1.6309 = 0.9197
    assert ndcg_at_k([1, 0, 1], [1, 1]) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([1, 0, 1], [1, 1]) == pytest.approx(0.919721, abs=1e-6)


def test_ndcg_uses_linear_graded_gain_and_sorts_the_ideal() -> None:
    # DCG = 2 + 0 + 3/log2(4) = 3.5; ideal DCG = 3 + 2/log2(3) + 1/log2(4) = 4.7619 -> 0.7350
    expected = 3.5 / (3 + 2 / math.log2(3) + 0.5)
    assert ndcg_at_k([2, 0, 3], [1, 3, 2]) == pytest.approx(expected)
    assert ndcg_at_k([2, 0, 3], [1, 3, 2]) == pytest.approx(0.735007, abs=1e-6)


def test_ndcg_ignores_ranks_past_k() -> None:
    assert ndcg_at_k([0] * 10 + [1], [1], k=10) == 0.0
    assert ndcg_at_k([0] * 10 + [1], [1], k=11) == pytest.approx(1 / math.log2(12))
    # The ideal is cut at k too: 3 relevant, k=1, found at rank 1 -> 1.0.
    assert ndcg_at_k([1, 0, 0], [1, 1, 1], k=1) == 1.0


def test_metrics_reject_k_below_one() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        ndcg_at_k([1], [1], k=0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        mrr_at_k([1], k=0)


# --- MRR and recall ------------------------------------------------------------------------


def test_mrr_is_the_reciprocal_rank_of_the_first_hit() -> None:
    assert mrr_at_k([0, 0, 1, 1]) == pytest.approx(1 / 3)
    assert mrr_at_k([2, 0]) == 1.0
    assert mrr_at_k([0] * 10 + [1]) == 0.0  # rank 11 is past the cut
    assert mrr_at_k([0] * 10 + [1], k=11) == pytest.approx(1 / 11)
    assert mrr_at_k([]) == 0.0


def test_recall_counts_relevant_documents_found() -> None:
    gains = [1, 0, 2, 0, 1]
    assert recall_at_k(gains, total_relevant=4, k=1) == 0.25
    assert recall_at_k(gains, total_relevant=4, k=3) == 0.5
    assert recall_at_k(gains, total_relevant=4, k=5) == 0.75
    assert recall_at_k(gains, total_relevant=4, k=50) == 0.75


def test_recall_with_one_relevant_item_is_success_at_k() -> None:
    # Two overlapping chunks both hold the answer: still 1.0, not 2.0.
    assert recall_at_k([0, 1, 1], total_relevant=1, k=3) == 1.0
    assert recall_at_k([0, 1, 1], total_relevant=1, k=1) == 0.0


def test_recall_needs_something_relevant() -> None:
    with pytest.raises(ValueError, match="at least one relevant item"):
        recall_at_k([1], total_relevant=0, k=1)


# --- judging chunks ------------------------------------------------------------------------


def test_answer_span_judges_each_chunk_by_the_answer_start() -> None:
    ranked = [
        chunk("d1", 0, 120),  # ends just before the start (end is exclusive)
        chunk("d1", 120, 220),  # starts at the answer start
        chunk("d2", 100, 200),  # right offsets, wrong document
        chunk("d1", 90, 150),  # overlaps the chunk above and also holds the start
        chunk("d1", 121, 300),  # holds the rest of the answer but not its start
    ]
    assert relevance_of(SPAN_QUERY, ranked, ANSWER_SPAN) == [0, 1, 0, 1, 0]


def test_qrels_count_a_document_at_its_best_chunk_only() -> None:
    ranked = [
        chunk("d9", 0, 10),
        chunk("d1", 0, 10),
        chunk("d1", 10, 20),  # second chunk of d1: 0
        chunk("d2", 0, 10),
        chunk("d1", 20, 30),
        chunk("d3", 0, 10),
    ]
    gains = relevance_of(GRADED_QUERY, ranked, QRELS)
    assert gains == [0, 2, 0, 1, 0, 3]
    assert ideal_gains(GRADED_QUERY, QRELS) == [3, 2, 1]
    # DCG = 2/log2(3) + 1/log2(5) + 3/log2(7); ideal = 3 + 2/log2(3) + 1/log2(4)
    dcg = 2 / math.log2(3) + 1 / math.log2(5) + 3 / math.log2(7)
    ideal = 3 + 2 / math.log2(3) + 0.5
    assert ndcg_at_k(gains, ideal_gains(GRADED_QUERY, QRELS)) == pytest.approx(dcg / ideal)
    assert recall_at_k(gains, total_relevant=3, k=4) == pytest.approx(2 / 3)


def test_relevance_rejects_unknown_judging() -> None:
    with pytest.raises(ValueError, match="judged_by must be"):
        relevance_of(SPAN_QUERY, [], "vibes")


def test_ideal_gains_for_answer_spans() -> None:
    assert ideal_gains(SPAN_QUERY, ANSWER_SPAN) == [1]
    assert ideal_gains(SPAN_QUERY, ANSWER_SPAN, relevant_chunk_count=3) == [1, 1, 1]
    assert ideal_gains(SPAN_QUERY, ANSWER_SPAN, relevant_chunk_count=0) == [1]


# --- overlapping chunks --------------------------------------------------------------------

SPAN_DATASET = EvalDataset(
    name="spans",
    documents=[EvalDocument(doc_id="d1", title="", text="x" * 300)],
    queries=[SPAN_QUERY],
    judged_by=ANSWER_SPAN,
)
# Chunks of 150 characters overlapping by 50: the answer start (120) is in the first two.
OVERLAPPING_CHUNKS = {"d1": [(0, 150), (100, 250), (200, 300)]}


def test_relevant_chunk_counts_counts_every_chunk_holding_the_start() -> None:
    assert relevant_chunk_counts(SPAN_DATASET, OVERLAPPING_CHUNKS) == {"s1": 2}
    assert relevant_chunk_counts(SPAN_DATASET, {"d1": [(0, 100), (130, 300)]}) == {"s1": 0}
    assert relevant_chunk_counts(SPAN_DATASET, {}) == {"s1": 0}


def test_relevant_chunk_counts_only_applies_to_answer_spans() -> None:
    dataset = EvalDataset(name="b", documents=[], queries=[GRADED_QUERY], judged_by=QRELS)
    with pytest.raises(ValueError, match="judged by qrels"):
        relevant_chunk_counts(dataset, {})


def test_overlapping_chunks_both_count_and_the_ideal_knows_it() -> None:
    counts = relevant_chunk_counts(SPAN_DATASET, OVERLAPPING_CHUNKS)
    both = {"s1": [chunk("d1", 0, 150), chunk("d1", 100, 250)]}
    one = {"s1": [chunk("d1", 100, 250), chunk("d1", 200, 300)]}

    assert evaluate_run(SPAN_DATASET, both, counts).ndcg_at_10 == 1.0
    # One of the two relevant chunks at rank 1: 1 / (1 + 1/log2(3)) = 0.6131
    found_one = evaluate_run(SPAN_DATASET, one, counts)
    assert found_one.ndcg_at_10 == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert found_one.recall_at_1 == 1.0  # success@1
    # Without the counts the ideal is what was found: one chunk, so a perfect 1.0 ...
    assert evaluate_run(SPAN_DATASET, one).ndcg_at_10 == 1.0
    # ... and never above 1 when both are found.
    assert evaluate_run(SPAN_DATASET, both).ndcg_at_10 == 1.0


def test_more_relevant_chunks_than_counted_is_an_error() -> None:
    repeated = [chunk("d1", 0, 150), chunk("d1", 0, 150), chunk("d1", 100, 250)]
    with pytest.raises(ValueError, match="query s1: 3 retrieved chunks contain an answer"):
        score_query(SPAN_QUERY, repeated, ANSWER_SPAN, relevant_chunk_count=2)


# --- per query, summaries and whole runs ---------------------------------------------------


def test_score_query_for_qrels() -> None:
    ranked = [chunk("d9", 0, 1), chunk("d3", 0, 1), chunk("d3", 1, 2)] + [
        chunk(f"x{i}", 0, 1) for i in range(10)
    ]
    ranked.append(chunk("d1", 0, 1))  # rank 14
    scores = score_query(GRADED_QUERY, ranked, QRELS)
    ideal = 3 + 2 / math.log2(3) + 0.5
    assert scores == {
        "ndcg_at_10": pytest.approx((3 / math.log2(3)) / ideal),
        "mrr_at_10": 0.5,
        "recall_at_1": 0.0,
        "recall_at_5": pytest.approx(1 / 3),
        "recall_at_10": pytest.approx(1 / 3),
        "recall_at_50": pytest.approx(2 / 3),
    }


def test_summarize_averages_each_metric() -> None:
    first = dict.fromkeys(
        ["ndcg_at_10", "mrr_at_10", "recall_at_1", "recall_at_5", "recall_at_10"], 1.0
    )
    first["recall_at_50"] = 1.0
    second = dict.fromkeys(first, 0.0) | {"mrr_at_10": 0.5}
    assert summarize([first, second]) == MetricSummary(
        ndcg_at_10=0.5,
        mrr_at_10=0.75,
        recall_at_1=0.5,
        recall_at_5=0.5,
        recall_at_10=0.5,
        recall_at_50=0.5,
        queries=2,
    )


def test_summarize_rejects_nothing_and_missing_metrics() -> None:
    with pytest.raises(ValueError, match="no queries"):
        summarize([])
    with pytest.raises(ValueError, match="1 of 1 per-query results lack 'ndcg_at_10'"):
        summarize([{"mrr_at_10": 1.0}])


def test_evaluate_run_scores_missing_queries_as_zero() -> None:
    other = EvalQuery(query_id="g2", text="other", relevant_docs={"d2": 1})
    dataset = EvalDataset(name="b", documents=[], queries=[GRADED_QUERY, other], judged_by=QRELS)
    summary = evaluate_run(dataset, {"g2": [chunk("d2", 0, 5)]})
    assert summary == MetricSummary(
        ndcg_at_10=0.5,
        mrr_at_10=0.5,
        recall_at_1=0.5,
        recall_at_5=0.5,
        recall_at_10=0.5,
        recall_at_50=0.5,
        queries=2,
    )


def test_evaluate_run_rejects_results_for_unknown_queries() -> None:
    with pytest.raises(ValueError, match="1 ids that are not queries of spans: nope"):
        evaluate_run(SPAN_DATASET, {"nope": []})


# --- percentile ----------------------------------------------------------------------------


def test_percentile_interpolates_linearly() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([7.0], 95) == 7.0
    latencies = [float(value) for value in range(1, 101)]
    assert percentile(latencies, 95) == pytest.approx(95.05)
    for p in (50, 90, 95, 99):
        assert percentile(latencies, p) == pytest.approx(float(np.percentile(latencies, p)))


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


# --- COVID-QA oracle -----------------------------------------------------------------------


def test_an_oracle_run_over_covidqa_scores_perfectly() -> None:
    """Fixed 1000-character windows overlapping by 200 over the real corpus; ranking every
    chunk that holds the answer start first must give 1.0 everywhere, and the reverse
    ranking (non-relevant chunks of the right document first) must not."""
    if not COVIDQA.is_file():
        pytest.skip(f"COVID-QA is not at {COVIDQA}; the shared data folder is missing")
    dataset = load_squad(COVIDQA)
    chunks_by_doc = {
        document.doc_id: [
            (start, min(start + 1000, len(document.text)))
            for start in range(0, len(document.text), 800)
        ]
        for document in dataset.documents
    }
    counts = relevant_chunk_counts(dataset, chunks_by_doc)
    assert set(counts) == {query.query_id for query in dataset.queries}
    assert all(count in (1, 2) for count in counts.values())
    assert any(count == 2 for count in counts.values())  # overlaps matter on real data

    oracle: dict[str, list[RetrievedChunk]] = {}
    worst: dict[str, list[RetrievedChunk]] = {}
    for query in dataset.queries:
        doc_id, answer_start, _ = query.answer_spans[0]
        ranked = [chunk(doc_id, start, end) for start, end in chunks_by_doc[doc_id]]
        holds = [c for c in ranked if c.start <= answer_start < c.end]
        others = [c for c in ranked if c not in holds]
        oracle[query.query_id] = (holds + others)[:50]
        worst[query.query_id] = (others[:10] + holds)[:50]

    perfect = evaluate_run(dataset, oracle, counts)
    assert perfect == MetricSummary(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, queries=len(dataset.queries))
    poor = evaluate_run(dataset, worst, counts)
    assert poor.recall_at_1 < 0.2
    assert poor.ndcg_at_10 < perfect.ndcg_at_10


def test_success_within_characters_counts_what_was_read_before_the_answer() -> None:
    ranked = [chunk("d1", 0, 100), chunk("d2", 0, 300), chunk("d1", 100, 200)]  # answer: 3rd
    assert success_within_characters(SPAN_QUERY, ranked, ANSWER_SPAN, 500) == 1.0
    assert success_within_characters(SPAN_QUERY, ranked, ANSWER_SPAN, 499) == 0.0
    assert success_within_characters(SPAN_QUERY, ranked[:2], ANSWER_SPAN, 10_000) == 0.0
    big = [chunk("d1", 0, 800)]  # holds the answer but does not fit the budget
    assert success_within_characters(SPAN_QUERY, big, ANSWER_SPAN, 500) == 0.0
