"""What the query cache saves on repeated questions: part of `copilot bench retrieval`.

A sample of the run's questions is asked `ROUNDS` times over (each round asks them all,
in the same order: a colleague asking what another asked a while ago), once through the
hybrid search without the cache and once with it, on the same indexes in the same run.
Reported: the hit rate, latency p50/p95/mean of every ask with and without the cache,
of the hits alone, and the ratio of the means; and that every hit returned exactly the
ranking the uncached search gave (a cache that changes answers is a bug, not a saving).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from statistics import fmean

from copilot.bench.metrics import percentile
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.search.ensemble import HybridSearch
from copilot.search.scope import AccessScope
from copilot.state.query_cache import SETTLE_SECONDS, QueryCache

ROUNDS = 3
SAMPLE = 200  # questions asked ROUNDS times each, both ways


@dataclass
class QueryCacheFigures:
    questions: int
    rounds: int
    hit_rate: float
    uncached_p50_ms: float
    uncached_p95_ms: float
    uncached_mean_ms: float
    cached_p50_ms: float  # every ask with the cache on: misses (first round) and hits
    cached_p95_ms: float
    cached_mean_ms: float
    hit_p50_ms: float
    hit_p95_ms: float
    speedup: float  # uncached mean / cached mean
    identical_results: float  # share of hits whose ranking equals the uncached one


async def _ask_rounds(
    search: HybridSearch, questions: list[str], scope: AccessScope, rounds: int
) -> tuple[list[float], list[bool], list[list[str]]]:
    """Latency, whether it was a cache hit, and the ranked chunk ids, of every ask."""
    latencies: list[float] = []
    hits: list[bool] = []
    rankings: list[list[str]] = []
    for _ in range(rounds):
        for question in questions:
            start = time.perf_counter()
            documents, report = await search.search(question, scope)
            latencies.append((time.perf_counter() - start) * 1000)
            hits.append(report.cached)
            rankings.append([str(d.metadata["chunk_id"]) for d in documents])
    return latencies, hits, rankings


async def measure_query_cache(
    kb: KnowledgeBase,
    cache: QueryCache,
    questions: list[str],
    scope: AccessScope,
    *,
    rounds: int = ROUNDS,
    sample: int = SAMPLE,
) -> QueryCacheFigures:
    """Both passes on `kb`'s indexes; `cache` should be empty of these questions."""
    if not questions:
        raise ValueError("the query cache bench needs at least one question")
    if len(questions) > sample:
        questions = random.Random(11).sample(questions, sample)
    plain = replace(kb.search, cache=None)
    uncached, _, expected = await _ask_rounds(plain, questions, scope, rounds)
    await asyncio.sleep(SETTLE_SECONDS)  # nothing is kept right after the ingest's bump
    cached = replace(kb.search, cache=cache)
    with_cache, hits, found = await _ask_rounds(cached, questions, scope, rounds)
    hit_latencies = [ms for ms, hit in zip(with_cache, hits, strict=True) if hit] or [0.0]
    same = [a == b for a, b, hit in zip(found, expected, hits, strict=True) if hit]
    return QueryCacheFigures(
        questions=len(questions),
        rounds=rounds,
        hit_rate=round(sum(hits) / max(len(hits), 1), 3),
        uncached_p50_ms=round(percentile(uncached, 50), 2),
        uncached_p95_ms=round(percentile(uncached, 95), 2),
        uncached_mean_ms=round(fmean(uncached), 2),
        cached_p50_ms=round(percentile(with_cache, 50), 2),
        cached_p95_ms=round(percentile(with_cache, 95), 2),
        cached_mean_ms=round(fmean(with_cache), 2),
        hit_p50_ms=round(percentile(hit_latencies, 50), 2),
        hit_p95_ms=round(percentile(hit_latencies, 95), 2),
        speedup=round(fmean(uncached) / max(fmean(with_cache), 1e-9), 2),
        identical_results=round(sum(same) / max(len(same), 1), 3),
    )
