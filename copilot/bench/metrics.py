"""Judging ranked chunks against a dataset, and the standard IR metrics over the judgements.

Search returns chunks, but datasets judge either chunks (SQuAD answer spans) or whole
documents (BEIR qrels). `relevance_of` turns a ranked chunk list into one gain per rank for
either kind; every metric below works on those gains only, so they stay small and testable.

Conventions (so numbers can be compared with other tools):

* nDCG uses linear gain (gain = relevance, not 2^rel - 1) and the log2(rank + 1) discount, as
  pytrec_eval / trec_eval's `ndcg_cut` do. For binary relevance both gains agree.
* Recall for answer-span datasets is success@k (1.0 when any relevant chunk is in the top k):
  how many overlapping chunks happen to contain an answer depends on the chunker, not on the
  retriever, and one chunk with the answer is all a RAG answer needs.
* Percentiles interpolate linearly between the closest ranks (numpy's default).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields

from copilot.answer.extractive import NOT_FOUND_TEXT, WEAK_EVIDENCE_TEXT
from copilot.bench.datasets import ANSWER_SPAN, QRELS, EvalDataset, EvalQuery

RECALL_CUTOFFS = (1, 5, 10, 50)


@dataclass(frozen=True)
class RetrievedChunk:
    doc_id: str
    start: int  # character offset of the chunk inside its document
    end: int  # exclusive


@dataclass
class MetricSummary:
    """Means over queries of the per-query metrics `score_query` returns."""

    ndcg_at_10: float
    mrr_at_10: float
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    recall_at_50: float
    queries: int


METRIC_NAMES = tuple(field.name for field in fields(MetricSummary) if field.name != "queries")


def relevance_of(query: EvalQuery, ranked: list[RetrievedChunk], judged_by: str) -> list[int]:
    """The gain of each ranked chunk, best first.

    answer_span: 1 when the chunk contains (start <= answer_start < end) the start of an answer
    in its own document, else 0. Each chunk is judged on its own, so two overlapping chunks
    holding the same answer both count.
    qrels: a document counts once, at the rank of its first (best) chunk, with its graded qrel
    score; its later chunks get 0, otherwise one long document could fill the top k.
    """
    _check_judged_by(judged_by)
    if judged_by == ANSWER_SPAN:
        return [1 if _contains_answer_start(query, chunk) else 0 for chunk in ranked]
    seen: set[str] = set()
    gains: list[int] = []
    for chunk in ranked:
        if chunk.doc_id in seen:
            gains.append(0)
            continue
        seen.add(chunk.doc_id)
        gains.append(max(query.relevant_docs.get(chunk.doc_id, 0), 0))
    return gains


def ideal_gains(
    query: EvalQuery, judged_by: str, relevant_chunk_count: int | None = None
) -> list[int]:
    """The best possible gains for the query, for nDCG's normaliser.

    qrels: the qrel scores, highest first. answer_span: one 1 per chunk of the index that
    contains an answer start when that count is known, else [1] (at least one such chunk).
    A count of 0 (the chunker lost the answer start) also gives [1]: the query then scores 0
    instead of dividing by zero.
    """
    _check_judged_by(judged_by)
    if judged_by == QRELS:
        return sorted((score for score in query.relevant_docs.values() if score > 0), reverse=True)
    if relevant_chunk_count is None or relevant_chunk_count < 1:
        return [1]
    return [1] * relevant_chunk_count


def dcg_at_k(gains: list[int], k: int) -> float:
    """Discounted cumulative gain: sum of gain / log2(rank + 1) over ranks 1..k."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains[:k], start=1))


def ndcg_at_k(gains: list[int], ideal_gains: list[int], k: int = 10) -> float:
    """DCG@k / ideal DCG@k, with linear gain (gain = relevance, not 2^rel - 1).

    The ideal gains are sorted here, so callers may pass them in any order. 0.0 when there is
    nothing relevant to find.
    """
    _check_k(k)
    ideal = dcg_at_k(sorted(ideal_gains, reverse=True), k)
    if ideal <= 0:
        return 0.0
    return dcg_at_k(gains, k) / ideal


def mrr_at_k(gains: list[int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant result in the top k, 0.0 when there is none."""
    _check_k(k)
    for rank, gain in enumerate(gains[:k], start=1):
        if gain > 0:
            return 1.0 / rank
    return 0.0


def recall_at_k(gains: list[int], total_relevant: int, k: int) -> float:
    """Relevant results in the top k over all relevant items, capped at 1.0.

    For qrels pass the number of relevant documents (gains count each document once, see
    `relevance_of`). For answer spans pass 1: the result is then success@k, 1.0 when any
    relevant chunk is in the top k.
    """
    _check_k(k)
    if total_relevant < 1:
        raise ValueError(
            f"recall needs at least one relevant item, got total_relevant={total_relevant}"
        )
    found = sum(1 for gain in gains[:k] if gain > 0)
    return min(found, total_relevant) / total_relevant


def score_query(
    query: EvalQuery,
    ranked: list[RetrievedChunk],
    judged_by: str,
    relevant_chunk_count: int | None = None,
) -> dict[str, float]:
    """Every metric of `MetricSummary` for one query, keyed by its field name.

    For answer spans without a known chunk count, the ideal is raised to the number of relevant
    chunks retrieved (a lower bound of the true count), so nDCG never exceeds 1; with a known
    count, retrieving more relevant chunks than it is an error rather than an nDCG above 1.
    """
    gains = relevance_of(query, ranked, judged_by)
    if judged_by == ANSWER_SPAN:
        retrieved_relevant = sum(1 for gain in gains if gain > 0)
        if relevant_chunk_count is None:
            relevant_chunk_count = max(retrieved_relevant, 1)
        elif retrieved_relevant > relevant_chunk_count:
            raise ValueError(
                f"query {query.query_id}: {retrieved_relevant} retrieved chunks contain an"
                f" answer start but relevant_chunk_count says {relevant_chunk_count}: the ranking"
                " repeats a chunk, or the counts come from other chunks than the index holds"
            )
        total_relevant = 1
    else:
        total_relevant = sum(1 for score in query.relevant_docs.values() if score > 0)
    ideal = ideal_gains(query, judged_by, relevant_chunk_count)
    scores = {
        "ndcg_at_10": ndcg_at_k(gains, ideal, 10),
        "mrr_at_10": mrr_at_k(gains, 10),
    }
    for k in RECALL_CUTOFFS:
        scores[f"recall_at_{k}"] = recall_at_k(gains, total_relevant, k)
    return scores


def summarize(per_query: list[dict[str, float]]) -> MetricSummary:
    """Mean of each metric over the queries (every query weighs the same)."""
    if not per_query:
        raise ValueError("no queries to summarize")
    means: dict[str, float] = {}
    for name in METRIC_NAMES:
        missing = sum(1 for scores in per_query if name not in scores)
        if missing:
            raise ValueError(f"{missing} of {len(per_query)} per-query results lack {name!r}")
        means[name] = math.fsum(scores[name] for scores in per_query) / len(per_query)
    return MetricSummary(**means, queries=len(per_query))


def evaluate_run(
    dataset: EvalDataset,
    results: dict[str, list[RetrievedChunk]],
    relevant_chunk_counts: dict[str, int] | None = None,
) -> MetricSummary:
    """Score a whole run: `results` maps query id to its ranked chunks (best first, up to 50).

    A query missing from `results` counts as retrieving nothing (scores 0), so a run cannot
    look better by dropping hard queries; an id that is not a query of the dataset is an error
    (the run was keyed wrongly). `relevant_chunk_counts` (see `relevant_chunk_counts`) only
    matters for answer-span datasets.
    """
    query_ids = {query.query_id for query in dataset.queries}
    unknown = [query_id for query_id in results if query_id not in query_ids]
    if unknown:
        raise ValueError(
            f"results for {len(unknown)} ids that are not queries of {dataset.name}:"
            f" {', '.join(sorted(unknown)[:5])}"
        )
    counts = relevant_chunk_counts or {}
    per_query = [
        score_query(
            query,
            results.get(query.query_id, []),
            dataset.judged_by,
            counts.get(query.query_id),
        )
        for query in dataset.queries
    ]
    return summarize(per_query)


def success_within_characters(
    query: EvalQuery, ranked: list[RetrievedChunk], judged_by: str, budget: int
) -> float:
    """1.0 when a relevant chunk is reached before the ranked chunks read so far exceed
    `budget` characters (counting that chunk), else 0.0.

    Rank cut-offs favour big chunks: a 512-token chunk holds an answer start twice as
    often as a 256-token one, and nDCG@10 of 512-token chunks reads twice the text. At a
    fixed reading budget (what the answer is handed), chunk sizes compare fairly.
    """
    used = 0
    for chunk, gain in zip(ranked, relevance_of(query, ranked, judged_by), strict=True):
        used += chunk.end - chunk.start
        if used > budget:
            return 0.0
        if gain > 0:
            return 1.0
    return 0.0


def relevant_chunk_counts(
    dataset: EvalDataset, chunks_by_doc: dict[str, list[tuple[int, int]]]
) -> dict[str, int]:
    """For each query of an answer-span dataset, how many distinct chunks of the whole index
    (document id -> [(start, end)]) contain one of its answer starts.

    With overlapping chunks an answer start can sit in several chunks; nDCG's ideal must count
    all of them or a perfect ranking would score above 1. 0 means the chunking lost the answer.
    """
    if dataset.judged_by != ANSWER_SPAN:
        raise ValueError(
            f"{dataset.name} is judged by {dataset.judged_by}; chunk counts only apply to"
            f" {ANSWER_SPAN} datasets"
        )
    counts: dict[str, int] = {}
    for query in dataset.queries:
        relevant: set[tuple[str, int, int]] = set()
        for doc_id, answer_start, _answer_end in query.answer_spans:
            for start, end in chunks_by_doc.get(doc_id, []):
                if start <= answer_start < end:
                    relevant.add((doc_id, start, end))
        counts[query.query_id] = len(relevant)
    return counts


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100), interpolating linearly between the closest ranks.

    Same as numpy.percentile's default ("linear"): rank = p / 100 * (n - 1), zero-based.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {p}")
    rank = p / 100 * (len(ordered) - 1)
    lower = math.floor(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


# --- answers (SQuAD's official evaluation script, v1.1) -------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace: SQuAD's
    `normalize_answer`, so F1 and containment compare with published figures."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1 between a prediction and one gold answer, after normalising both."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_token_f1(prediction: str, golds: Iterable[str]) -> float:
    """The best F1 over the gold answers (SQuAD takes the max over annotators)."""
    return max((token_f1(prediction, gold) for gold in golds), default=0.0)


def contains_gold(prediction: str, golds: Iterable[str]) -> bool:
    """True when a normalised gold answer occurs in the normalised prediction, on token
    boundaries ("19" is not found in "2019"). Empty golds never count."""
    answer = f" {normalize_answer(prediction)} "
    return any((expected := normalize_answer(gold)) and f" {expected} " in answer for gold in golds)


# A chat model is told to say it "could not find" the answer (copilot/answer/prompts.py).
_NOT_FOUND = re.compile(
    r"\b(could ?n[o']t|can ?n[o']t|unable to|did ?n[o']t|do ?n[o']t) (find|locate)\b"
    r"|\bnot (found|mentioned|contain(ed)?|stated|provided) in\b",
    re.IGNORECASE,
)


def says_not_found(answer: str) -> bool:
    """True for the extractive answerer's fixed not-found text (the chain's too, when no
    source was retrieved), for its "I found these passages but none states it directly"
    (related passages are not an answer), and for a model's "could not find it" wording."""
    text = answer.strip()
    return (
        text == NOT_FOUND_TEXT
        or text.startswith(WEAK_EVIDENCE_TEXT)
        or bool(_NOT_FOUND.search(answer))
    )


def chunk_holds_answer(query: EvalQuery, chunk: RetrievedChunk | None, chunk_text: str) -> bool:
    """A cited chunk holds the gold answer when its span in the document covers an answer
    start, or (its span unknown or shifted by the loader) its text contains a gold answer."""
    if chunk is not None and _contains_answer_start(query, chunk):
        return True
    same_document = chunk is None or chunk.doc_id in query.relevant_docs
    return same_document and contains_gold(chunk_text, query.answer_texts)


def _contains_answer_start(query: EvalQuery, chunk: RetrievedChunk) -> bool:
    return any(
        doc_id == chunk.doc_id and chunk.start <= answer_start < chunk.end
        for doc_id, answer_start, _answer_end in query.answer_spans
    )


def _check_judged_by(judged_by: str) -> None:
    if judged_by not in (ANSWER_SPAN, QRELS):
        raise ValueError(f"judged_by must be {ANSWER_SPAN!r} or {QRELS!r}, got {judged_by!r}")


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
