"""`copilot bench answer`: how often the chat's own answer holds the gold answer.

The dataset's documents go through the real pipeline into a scratch knowledge base (as in
`copilot bench retrieval`), and every question is asked through `AnswerChain`, the code path
of the chat and `copilot ask`, with the configured provider (the extractive answerer when no
chat model is configured).

Unanswerable questions: a fixed-seed share of the documents (`holdout_fraction`, 10% by
default) is left out of the ingested corpus, and their own questions are asked against the
corpus without them. The right answer to those is "not found". A SQuAD article with several
paragraphs has each paragraph as a document, so a held-out paragraph's question can still be
answerable from a sibling paragraph; COVID-QA has one document per paper.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from dataclasses import asdict, dataclass, field

from copilot.answer.chain import AnswerChain
from copilot.bench.datasets import ANSWER_SPAN, EvalDataset, EvalQuery
from copilot.bench.metrics import (
    best_token_f1,
    chunk_holds_answer,
    contains_gold,
    percentile,
    says_not_found,
)
from copilot.bench.retrieval import Say, ingest_dataset, scratch_knowledge_base
from copilot.knowledge.embeddings import EmbeddingProvider
from copilot.settings import Settings

_CITATION_MARK = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")


@dataclass
class QuestionOutcome:
    query_id: str
    answerable: bool
    not_found: bool
    contains_gold: bool
    f1: float
    gold_chunk_cited: bool
    answer_characters: int
    latency_ms: float
    answer: str
    # From the question to the first streamed piece of the answer (what a reader waits for).
    first_token_ms: float = 0.0


@dataclass
class AnswerReport:
    dataset: str
    model: str
    documents: int
    held_out_documents: int
    chunks: int
    ingest_seconds: float
    answerable: int
    unanswerable: int
    # Shares of the answerable questions.
    gold_contained: float
    mean_f1: float
    gold_chunk_cited: float
    wrongly_not_found: float
    # Share of the unanswerable questions answered "not found".
    not_found_on_unanswerable: float
    # Characters of the answers to answerable questions that were answered (not "not found").
    mean_answer_characters: float
    median_answer_characters: float
    latency_p50_ms: float
    latency_p95_ms: float
    first_token_p50_ms: float
    first_token_p95_ms: float
    questions: list[QuestionOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def split_holdout(
    dataset: EvalDataset, fraction: float, seed: int
) -> tuple[EvalDataset, list[EvalQuery]]:
    """The dataset without a fixed-seed `fraction` of its documents, and the questions of the
    held-out documents (unanswerable against the rest). At least one document stays in."""
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be at least 0 and below 1, got {fraction}")
    count = min(round(fraction * len(dataset.documents)), len(dataset.documents) - 1)
    held = {d.doc_id for d in random.Random(seed).sample(dataset.documents, count)}
    kept = EvalDataset(
        dataset.name,
        [d for d in dataset.documents if d.doc_id not in held],
        [q for q in dataset.queries if not set(q.relevant_docs) & held],
        dataset.judged_by,
    )
    unanswerable = [q for q in dataset.queries if set(q.relevant_docs) <= held]
    return kept, unanswerable


async def run_answer_bench(
    settings: Settings,
    dataset: EvalDataset,
    *,
    max_queries: int | None = None,
    seed: int = 7,
    holdout_fraction: float = 0.1,
    say: Say = print,
    embeddings: EmbeddingProvider | None = None,
) -> AnswerReport:
    """Ingest all but the held-out documents, then ask a sample of `max_queries` answerable
    questions and as many (at most) unanswerable ones, both drawn with `seed`."""
    if dataset.judged_by != ANSWER_SPAN:
        raise ValueError(f"{dataset.name}: the answer bench needs a SQuAD-style dataset")
    corpus, unanswerable = split_holdout(dataset, holdout_fraction, seed)
    answerable = corpus.queries
    sampler = random.Random(seed)
    if max_queries is not None:
        answerable = sampler.sample(answerable, min(max_queries, len(answerable)))
        unanswerable = sampler.sample(unanswerable, min(max_queries, len(unanswerable)))
    say(
        f"{len(dataset.documents) - len(corpus.documents)} of {len(dataset.documents)} documents"
        f" held out: their {len(unanswerable)} questions are the unanswerable set"
    )
    async with scratch_knowledge_base(settings, embeddings) as (kb, principal, _):
        ingested = await ingest_dataset(kb, corpus, principal, say)
        spans, ingest_seconds, chunk_count = ingested.spans, ingested.seconds, ingested.chunks
        say(f"ingested {chunk_count} chunks in {ingest_seconds:.1f} s")
        chain = AnswerChain.from_settings(
            kb.settings, kb.search, kb.embeddings, sessions=kb.sessions, locate=kb.locations
        )
        # The reveal pace is how a reader is shown a finished answer, not how long it takes
        # to answer: the latencies here are the answer's own (the first token is unchanged).
        chain.reveal_words_per_second = 0.0
        outcomes: list[QuestionOutcome] = []
        asked = [(q, True) for q in answerable] + [(q, False) for q in unanswerable]
        for number, (query, is_answerable) in enumerate(asked, 1):
            first_token: list[float] = []

            async def on_token(_: str, first_token: list[float] = first_token) -> None:
                if not first_token:
                    first_token.append(time.perf_counter())

            start = time.perf_counter()
            result = await chain.answer(query.text, principal.scope, on_token=on_token)
            end = time.perf_counter()
            latency = (end - start) * 1000
            not_found = says_not_found(result.text)
            text = _CITATION_MARK.sub("", result.text)  # "[1]" is not part of the answer
            outcomes.append(
                QuestionOutcome(
                    query_id=query.query_id,
                    answerable=is_answerable,
                    not_found=not_found,
                    contains_gold=is_answerable and contains_gold(text, query.answer_texts),
                    f1=round(best_token_f1(text, query.answer_texts), 4) if is_answerable else 0.0,
                    gold_chunk_cited=is_answerable
                    and any(
                        chunk_holds_answer(query, spans.get(s["chunk_id"]), s["snippet"])
                        for s in result.cited_sources
                    ),
                    answer_characters=len(result.text),
                    latency_ms=round(latency, 1),
                    answer=result.text,
                    first_token_ms=round(((first_token or [end])[0] - start) * 1000, 1),
                )
            )
            if number % 20 == 0 or number == len(asked):
                say(f"  answered {number}/{len(asked)} questions")
        return summarize_answers(
            outcomes,
            dataset=dataset.name,
            model=chain.model_name,
            documents=len(corpus.documents),
            held_out_documents=len(dataset.documents) - len(corpus.documents),
            chunks=chunk_count,
            ingest_seconds=round(ingest_seconds, 1),
        )


def summarize_answers(outcomes: list[QuestionOutcome], **about: object) -> AnswerReport:
    """The shares and percentiles of one run; `about` names the run (dataset, model, ...)."""
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    if not answerable:
        raise ValueError("no answerable question was asked")
    answered_lengths = [o.answer_characters for o in answerable if not o.not_found] or [0]
    latencies = [o.latency_ms for o in outcomes]
    first_tokens = [o.first_token_ms for o in outcomes]

    def share(items: list[QuestionOutcome], test: str) -> float:
        return round(sum(1 for o in items if getattr(o, test)) / len(items), 4) if items else 0.0

    return AnswerReport(
        **about,  # type: ignore[arg-type]
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        gold_contained=share(answerable, "contains_gold"),
        mean_f1=round(statistics.fmean(o.f1 for o in answerable), 4),
        gold_chunk_cited=share(answerable, "gold_chunk_cited"),
        wrongly_not_found=share(answerable, "not_found"),
        not_found_on_unanswerable=share(unanswerable, "not_found"),
        mean_answer_characters=round(statistics.fmean(answered_lengths), 1),
        median_answer_characters=float(statistics.median(answered_lengths)),
        latency_p50_ms=round(percentile(latencies, 50), 1),
        latency_p95_ms=round(percentile(latencies, 95), 1),
        first_token_p50_ms=round(percentile(first_tokens, 50), 1),
        first_token_p95_ms=round(percentile(first_tokens, 95), 1),
        questions=outcomes,
    )
